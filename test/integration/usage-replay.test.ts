import { writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import t from 'tap';
import type { UsageReport } from '../../common/usage.ts';
import {
  DAY,
  daily,
  FRONTEND,
  inbound,
  MiB,
  report,
} from '../../control-plane/detection/test-fixtures.ts';
import { postern, tempDir } from '../helpers.ts';

/** Two days of frontend reading orders on a daily curve, then one bulk read. */
function usageLog(): UsageReport[] {
  const curve = daily(2 * MiB, 12 * MiB);
  const reports: UsageReport[] = [];
  for (let i = 0; i < 2 * DAY; i++)
    reports.push(report(i, 'orders-0', [inbound(FRONTEND, curve(i))]));
  reports.push(report(2 * DAY, 'orders-0', [inbound(FRONTEND, 300 * MiB)]));
  return reports;
}

t.test('postern usage replay prints the alerts of a usage log as JSON lines', async (t) => {
  const dir = await tempDir(t);
  const log = join(dir, 'usage.jsonl');
  await writeFile(
    log,
    `${usageLog()
      .map((r) => JSON.stringify(r))
      .join('\n')}\n`,
  );
  const result = postern('usage', 'replay', log);
  t.equal(result.status, 0, result.stderr);
  const alerts = result.stdout
    .trim()
    .split('\n')
    .map((line) => JSON.parse(line));
  t.match(alerts, [
    {
      detector: 'volume',
      severity: 'high',
      principal: FRONTEND,
      workload: 'shop/orders',
      route: 'get-order',
      windowStart: '2026-11-03T00:00:00.000Z',
      evidence: { responseBytes: 300 * MiB },
    },
  ]);
});

t.test(
  "with --policies, a route's maxResponseBytes caps count from the first window",
  async (t) => {
    const dir = await tempDir(t);
    const log = join(dir, 'usage.jsonl');
    await writeFile(
      log,
      [0, 1, 2]
        .map((i) => JSON.stringify(report(i, 'orders-0', [inbound(FRONTEND, 20 * MiB)])))
        .join('\n'),
    );
    const policies = join(dir, 'policy.yaml');
    await writeFile(
      policies,
      `apiVersion: postern.dev/v1alpha1
kind: RoutePolicy
metadata: { name: orders-api, namespace: shop }
spec:
  routes:
    - name: get-order
      exfiltration: { maxResponseBytes: { bytes: 50Mi, per: 15m }, action: block }
`,
    );
    const result = postern('usage', 'replay', log, '--policies', policies);
    t.equal(result.status, 0, result.stderr);
    t.match(JSON.parse(result.stdout), {
      detector: 'cap',
      windowStart: '2026-11-01T00:10:00.000Z',
      evidence: { responseBytes: 60 * MiB, capBytes: 50 * MiB, perSeconds: 900, action: 'block' },
    });
  },
);

t.test(
  'a line that is not a usage report is named with its line and the reason, and the rest is replayed',
  async (t) => {
    const dir = await tempDir(t);
    const log = join(dir, 'usage.jsonl');
    const lines = usageLog().map((r) => JSON.stringify(r));
    lines.splice(
      3,
      0,
      '{"source": {"workload": "orders"}, "window": {"start": "now", "seconds": 300}, "entries": []}',
    );
    lines.splice(5, 0, 'not json');
    await writeFile(log, lines.join('\n'));
    const result = postern('usage', 'replay', log);
    t.equal(result.status, 1);
    t.match(result.stderr, `${log}:4: not a usage report: /source/namespace`);
    t.match(result.stderr, `${log}:6: not JSON`);
    t.match(result.stderr, `2 line(s) of ${log} skipped`);
    t.match(JSON.parse(result.stdout), { detector: 'volume' }, 'the good lines still count');
    const missing = postern('usage', 'replay', join(dir, 'nothing-here.jsonl'));
    t.equal(missing.status, 2);
    t.match(missing.stderr, /nothing-here\.jsonl: ENOENT/);
  },
);
