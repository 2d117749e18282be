/**
 * How long `postern usage replay` takes over a week of 5-minute windows from
 * a hundred workloads (issue 10: "in seconds"), each called by five callers
 * on five routes, on a daily curve: 201,600 reports, 1,008,000 entries.
 *
 *   npm run bench:usage-replay
 *
 * Writes the log to a temporary folder, then runs the CLI as a user would.
 */
import { spawnSync } from 'node:child_process';
import { once } from 'node:events';
import { createWriteStream } from 'node:fs';
import { mkdtemp, rm, stat } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { CHILD_NODE_ARGS, POSTERN_BIN } from '../cli/processes.ts';

const T0 = Date.parse('2026-11-02T00:00:00Z');
const WINDOWS = 7 * 288;
const WORKLOADS = 100;
const CALLERS = 5;

const dir = await mkdtemp(join(tmpdir(), 'postern-replay-'));
try {
  const file = join(dir, 'week.jsonl');
  const out = createWriteStream(file);
  for (let i = 0; i < WINDOWS; i++) {
    const hour = ((i * 300) / 3600) % 24;
    const level = 1 + Math.sin(((hour - 8) / 24) * 2 * Math.PI);
    const start = new Date(T0 + i * 300_000).toISOString();
    for (let w = 0; w < WORKLOADS; w++) {
      const entries = Array.from({ length: CALLERS }, (_, c) => ({
        direction: 'inbound',
        principal: `spiffe://cluster.local/ns/shop/sa/caller-${c}`,
        route: `route-${c}`,
        requests: Math.round(100 * level) + 1,
        requestBytes: 1000,
        responseBytes: Math.round(2_000_000 * level) + 1000,
        distinctResources: 3,
      }));
      const report = {
        source: { workload: `w${w}`, namespace: 'shop', pod: `w${w}-0` },
        window: { start, seconds: 300 },
        entries,
      };
      if (!out.write(`${JSON.stringify(report)}\n`)) await once(out, 'drain');
    }
  }
  await new Promise<void>((resolve) => out.end(() => resolve()));
  const started = performance.now();
  const result = spawnSync(
    process.execPath,
    [...CHILD_NODE_ARGS, POSTERN_BIN, 'usage', 'replay', file],
    {
      encoding: 'utf8',
      maxBuffer: 2 ** 28,
    },
  );
  const seconds = (performance.now() - started) / 1000;
  if (result.status !== 0) throw new Error(result.stderr);
  const alerts = result.stdout.split('\n').filter(Boolean).length;
  const mb = (await stat(file)).size / 2 ** 20;
  process.stdout.write(
    `${WINDOWS * WORKLOADS} reports (${mb.toFixed(0)} MB, ${WINDOWS * WORKLOADS * CALLERS} entries) replayed in ${seconds.toFixed(1)} s; ${alerts} alerts\n`,
  );
} finally {
  await rm(dir, { recursive: true, force: true });
}
