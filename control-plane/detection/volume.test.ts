import t from 'tap';
import { CONFIG, DAY, daily, historyOf, MiB, usage } from './test-fixtures.ts';
import { volumeAlert } from './volume.ts';

t.test("a bulk read far above the caller's own last day alerts, with its evidence", async (t) => {
  const { history, nextMs } = historyOf(2 * DAY, daily(1 * MiB, 8 * MiB));
  const alert = volumeAlert(usage({ responseBytes: 200 * MiB }), history, CONFIG, nextMs);
  t.match(alert, {
    detector: 'volume',
    severity: 'high',
    route: 'get-order',
    workload: 'shop/orders',
    evidence: { responseBytes: 200 * MiB, replicas: 1 },
  });
  t.ok(
    (alert?.evidence.baselineP99Bytes as number) >= 7 * MiB,
    'the baseline holds the daily peak',
  );
});

t.test("yesterday's peak, again today, is no alert", async (t) => {
  const { history, nextMs } = historyOf(2 * DAY, daily(1 * MiB, 8 * MiB));
  t.equal(volumeAlert(usage({ responseBytes: 9 * MiB }), history, CONFIG, nextMs), undefined);
});

t.test('nothing alerts before a whole day of learning, nor below the floor', async (t) => {
  const young = historyOf(DAY / 2, () => MiB);
  t.equal(
    volumeAlert(usage({ responseBytes: 500 * MiB }), young.history, CONFIG, young.nextMs),
    undefined,
  );
  const tiny = historyOf(2 * DAY, () => 100);
  t.equal(
    volumeAlert(usage({ responseBytes: 100_000 }), tiny.history, CONFIG, tiny.nextMs),
    undefined,
    "1,000 times a tiny caller's usual is still under the floor",
  );
});

t.test(
  'the same volume spread over replicas, none above the threshold alone, is called spread',
  async (t) => {
    const { history, nextMs } = historyOf(2 * DAY, () => 2 * MiB);
    const pods = Object.fromEntries(Array.from({ length: 10 }, (_, i) => [`orders-${i}`, 6 * MiB]));
    const alert = volumeAlert(usage({ responseBytes: 60 * MiB, pods }), history, CONFIG, nextMs);
    t.match(alert, {
      detector: 'spread',
      evidence: { replicas: 10, largestReplicaBytes: 6 * MiB },
    });
  },
);
