import t from 'tap';
import { enumerationAlert } from './enumeration.ts';
import { CONFIG, DAY, historyOf, usage } from './test-fixtures.ts';

t.test('a caller walking hundreds of ids where it usually touches a few alerts', async (t) => {
  const { history, nextMs } = historyOf(
    2 * DAY,
    () => 1000,
    (i) => 2 + (i % 5),
  );
  const ids = new Set(Array.from({ length: 64 }, (_, i) => String(1000 + i)));
  const alert = enumerationAlert(
    usage({ distinctResources: 800, resourceIds: ids }),
    history,
    CONFIG,
    nextMs,
  );
  t.match(alert, { detector: 'enumeration', evidence: { distinctResources: 800, baselineP99: 6 } });
  t.equal((alert?.evidence.sampleIds as string[] | undefined)?.length, 10);
});

t.test('a caller that always lists many ids, or a few more than usual, does not', async (t) => {
  const busy = historyOf(
    2 * DAY,
    () => 1000,
    () => 300,
  );
  t.equal(
    enumerationAlert(usage({ distinctResources: 400 }), busy.history, CONFIG, busy.nextMs),
    undefined,
  );
  const quiet = historyOf(
    2 * DAY,
    () => 1000,
    () => 2,
  );
  t.equal(
    enumerationAlert(usage({ distinctResources: 40 }), quiet.history, CONFIG, quiet.nextMs),
    undefined,
    'under the floor of 50',
  );
});
