import t from 'tap';
import { slowVolumeAlert } from './slow-volume.ts';
import { CONFIG, DAY, daily, historyOf, MiB, usage } from './test-fixtures.ts';

t.test(
  'an hour at three times the same hour yesterday alerts, though no window stands out',
  async (t) => {
    const normal = daily(1 * MiB, 4 * MiB);
    // Two days as usual, then the last 11 windows (and this one) at 3x.
    const { history, nextMs } = historyOf(2 * DAY + 11, (i) =>
      i >= 2 * DAY ? 3 * normal(i) : normal(i),
    );
    const alert = slowVolumeAlert(
      usage({ responseBytes: 3 * normal(2 * DAY + 11) }),
      history,
      CONFIG,
      nextMs,
    );
    t.match(alert, {
      detector: 'slow-volume',
      severity: 'medium',
      evidence: { spanSeconds: 3600 },
    });
  },
);

t.test('a daily cycle, an hour early, is no alert', async (t) => {
  const normal = daily(1 * MiB, 6 * MiB);
  // Today runs 45 minutes ahead of yesterday.
  const { history, nextMs } = historyOf(2 * DAY + 100, (i) =>
    i >= 2 * DAY ? normal(i + 9) : normal(i),
  );
  t.equal(
    slowVolumeAlert(usage({ responseBytes: normal(2 * DAY + 109) }), history, CONFIG, nextMs),
    undefined,
  );
});

t.test('it waits for a day and an hour of history', async (t) => {
  const { history, nextMs } = historyOf(DAY, () => MiB);
  t.equal(slowVolumeAlert(usage({ responseBytes: 50 * MiB }), history, CONFIG, nextMs), undefined);
});
