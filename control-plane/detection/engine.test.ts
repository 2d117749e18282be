import t from 'tap';
import type { Alert, UsageReport } from '../../common/usage.ts';
import { DetectionEngine } from './engine.ts';
import { DAY, daily, FRONTEND, inbound, MiB, report } from './test-fixtures.ts';

const STOLEN = 'spiffe://cluster.local/ns/batch/sa/reporter';

/** Replays `reports` in window order, as a usage log holds them. */
function run(reports: readonly UsageReport[], engine = new DetectionEngine()): Alert[] {
  const ordered = [...reports].sort(
    (a, b) => Date.parse(a.window.start) - Date.parse(b.window.start),
  );
  const alerts = ordered.flatMap((r) => engine.add(r));
  return [...alerts, ...engine.flush()];
}

/** `days` days of frontend reading orders on a daily curve, over `pods(i)` replicas named by `podName`. */
function benign(
  days: number,
  pods: (i: number) => number = () => 3,
  podName = (_window: number, p: number) => `orders-${p}`,
): UsageReport[] {
  const curve = daily(2 * MiB, 12 * MiB);
  const reports: UsageReport[] = [];
  for (let i = 0; i < days * DAY; i++) {
    const n = pods(i);
    for (let p = 0; p < n; p++) {
      reports.push(
        report(i, podName(i, p), [
          inbound(FRONTEND, Math.round(curve(i) / n), { distinctResources: Math.ceil(6 / n) }),
        ]),
      );
    }
  }
  return reports;
}

t.test(
  'three days of a daily cycle, scaling 3 to 30 replicas and a rollout, raise nothing',
  async (t) => {
    const reports = benign(
      3,
      (i) => (i < 2 * DAY ? 3 : 30),
      // A rollout on day 2: every pod replaced.
      (i, p) => (i < DAY + 100 ? `orders-a-${p}` : `orders-b-${p}`),
    );
    t.same(run(reports), []);
  },
);

t.test("the replicas' reports of a window are one caller's window", async (t) => {
  const bulk = benign(2);
  bulk.push(report(2 * DAY, 'orders-0', [inbound(FRONTEND, 100 * MiB)]));
  bulk.push(report(2 * DAY, 'orders-1', [inbound(FRONTEND, 10 * MiB)]));
  t.match(run(bulk), [
    {
      detector: 'volume',
      principal: FRONTEND,
      workload: 'shop/orders',
      windowStart: '2026-11-03T00:00:00.000Z',
      evidence: { responseBytes: 110 * MiB, replicas: 2, largestReplicaBytes: 100 * MiB },
    },
  ]);
  // Each of 3 replicas serves 40 MiB: none alone above the caller's threshold, 120 MiB in all.
  const spread = benign(2);
  for (let p = 0; p < 3; p++)
    spread.push(report(2 * DAY, `orders-${p}`, [inbound(FRONTEND, 40 * MiB)]));
  const alerts = run(spread);
  t.equal(alerts.length, 1, 'one finding, one alert');
  t.match(alerts[0], { detector: 'spread', evidence: { responseBytes: 120 * MiB, replicas: 3 } });
});

t.test('a new caller after the learning period is novel; one during it is not', async (t) => {
  const early = benign(1);
  early.push(report(10, 'orders-0', [inbound(STOLEN, 1000)]));
  t.same(run(early), [], 'the first day learns who calls');
  const late = benign(2);
  late.push(report(DAY + 10, 'orders-0', [inbound(STOLEN, 1000)]));
  late.push(report(DAY + 11, 'orders-0', [inbound(STOLEN, 1000)]));
  t.match(run(late), [{ detector: 'novelty', principal: STOLEN, route: 'get-order' }]);
});

t.test('a sustained attack alerts once per cooldown, not every window', async (t) => {
  const reports = benign(2);
  for (let i = 2 * DAY; i < 2 * DAY + 24; i++)
    reports.push(report(i, 'orders-0', [inbound(FRONTEND, 200 * MiB)]));
  const alerts = run(reports).filter((a) => a.detector === 'volume');
  t.same(
    alerts.map((a) => a.windowStart),
    ['2026-11-03T00:00:00.000Z', '2026-11-03T01:00:00.000Z'],
  );
});

t.test('egress: a new host after learning, and a known one sent far more than usual', async (t) => {
  const reports = benign(2);
  const out = (i: number, destination: string, requestBytes: number) =>
    report(i, 'orders-0', [
      { direction: 'outbound', destination, requests: 1, requestBytes, responseBytes: 100 },
    ]);
  for (let i = 0; i < 2 * DAY; i += 6) reports.push(out(i, 'api.partner.example:443', 50_000));
  reports.push(out(2 * DAY + 1, 'paste.evil.example:443', 10_000));
  reports.push(out(2 * DAY + 2, 'api.partner.example:443', 500 * MiB));
  t.match(run(reports), [
    {
      detector: 'egress',
      principal: 'shop/orders',
      destination: 'paste.evil.example:443',
      severity: 'medium',
    },
    { detector: 'egress', destination: 'api.partner.example:443', severity: 'high' },
  ]);
});

t.test(
  'a report for a window already closed is dropped and counted, never recorded twice',
  async (t) => {
    const engine = new DetectionEngine();
    engine.add(report(0, 'orders-0', [inbound(FRONTEND, MiB)]));
    engine.add(report(5, 'orders-0', [inbound(FRONTEND, MiB)]));
    t.same(engine.add(report(0, 'orders-1', [inbound(FRONTEND, MiB)])), []);
    t.equal(engine.lateReports, 1);
  },
);

t.test(
  'past maxHistories the least recently active caller is forgotten, and counted',
  async (t) => {
    const engine = new DetectionEngine({ config: { learningSeconds: 0 }, maxHistories: 2 });
    const report = (start: number, principals: string[]) => ({
      source: { workload: 'orders', namespace: 'shop' },
      window: { start: new Date(start).toISOString(), seconds: 60 },
      entries: principals.map((principal) => ({
        direction: 'inbound' as const,
        principal,
        route: 'r',
        requests: 1,
        requestBytes: 0,
        responseBytes: 10,
      })),
    });
    const T = Date.parse('2026-11-01T00:00:00Z');
    engine.add(report(T, ['spiffe://a', 'spiffe://b']));
    engine.add(report(T + 60_000, ['spiffe://b']));
    engine.add(report(T + 120_000, ['spiffe://c']));
    const alerts = [...engine.add(report(T + 180_000, ['spiffe://b'])), ...engine.flush()];
    t.equal(engine.evictedHistories, 1, 'one forgotten to make room for c');
    t.same(
      alerts.filter((a) => a.detector === 'novelty').map((a) => a.principal),
      ['spiffe://c'],
      'b was active more recently than a, so a went and b is still known',
    );
  },
);
