/**
 * Control-plane scale, simulated: one real control plane process against N
 * sidecars held by one simulator process, over real mTLS on loopback.
 *
 *   npm run bench:control-plane -- [N...]     (default 1000 5000; multiples of 10, at least 20)
 *       [--edits E]      policy edits per N (default 10)
 *       [--gap S]        seconds of quiet before each edit (default 5)
 *       [--out DIR]      where the reports go (default load-tests/reports/)
 *       [--no-pin]       do not pin the control plane and the simulator to cores 0 and 1
 *       [--keep]         keep the work folders (the processes' logs) and print where they are
 *
 * For each N: the time to connect and register all N sidecars, the control
 * plane's RSS with none and with N connected, then E saves of the policy
 * file with, for each, save-to-ack latency over every sidecar, the control
 * plane's CPU and the bytes pushed; and a linear projection to a
 * 50,000-pod cluster. Writes control-plane-scale.{md,json} and prints the
 * tables. The parts are in control-plane-scale/.
 */
import { execFileSync } from 'node:child_process';
import { availableParallelism, cpus } from 'node:os';
import { relative, resolve } from 'node:path';
import { parseArgs } from 'node:util';
import { getHeapStatistics } from 'node:v8';
import { POSTERN_BIN } from '../cli/processes.ts';
import { REPLICAS } from './control-plane-scale/mesh.ts';
import { project } from './control-plane-scale/projection.ts';
import { consoleSummary, type ScaleReport, writeReports } from './control-plane-scale/report.ts';
import { measureScale, type ScaleRun } from './control-plane-scale/run.ts';

const { values, positionals } = parseArgs({
  allowPositionals: true,
  options: {
    edits: { type: 'string', default: '10' },
    gap: { type: 'string', default: '5' },
    out: { type: 'string', default: resolve(import.meta.dirname, 'reports') },
    'no-pin': { type: 'boolean', default: false },
    keep: { type: 'boolean', default: false },
  },
});
const sizes = positionals.length ? positionals.map(Number) : [1000, 5000];
const bad = sizes.find((n) => !Number.isInteger(n) || n < 2 * REPLICAS || n % REPLICAS);
if (bad !== undefined) {
  console.error(`sidecar counts are multiples of ${REPLICAS}, at least ${2 * REPLICAS}: ${bad}`);
  process.exit(2);
}
const edits = Number(values.edits);
const gapSeconds = Number(values.gap);
const pinned = !values['no-pin'] && availableParallelism() >= 2;

/** The commit measured, and whether the tree had changes beyond it (read-only git). */
function commit(): string {
  try {
    const git = (...args: string[]) =>
      execFileSync('git', args, { cwd: import.meta.dirname, encoding: 'utf8' }).trim();
    return `${git('rev-parse', '--short', 'HEAD')}${git('status', '--porcelain').length ? ' with uncommitted changes' : ''}`;
  } catch {
    return 'unknown';
  }
}

const startedAt = new Date().toISOString();
const runs: ScaleRun[] = [];
for (const sidecars of sizes) {
  console.log(`${sidecars} sidecars: ${edits} edits, ${gapSeconds} s apart`);
  runs.push(
    await measureScale(sidecars, {
      edits,
      gapMs: gapSeconds * 1000,
      pin: pinned,
      keep: values.keep!,
    }),
  );
}
const heapLimitMb = getHeapStatistics().heap_size_limit / 1048576;
const report: ScaleReport = {
  startedAt,
  command: `npm run bench:control-plane -- ${process.argv.slice(2).join(' ')}`.trim(),
  machine: {
    cpus: availableParallelism(),
    model: cpus()[0]?.model ?? 'unknown',
    node: process.versions.node,
    heapLimitMb,
    commit: commit(),
    binary: relative(resolve(import.meta.dirname, '..'), POSTERN_BIN),
  },
  edits,
  gapSeconds,
  pinned,
  runs,
  projection: project(runs, heapLimitMb),
};
const files = await writeReports(values.out!, report);
console.log(`\n${consoleSummary(report)}\nwrote ${files.join(', ')}`);
