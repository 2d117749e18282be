/**
 * The latency harness (DESIGN.md, "Performance budget"):
 *
 *   npm run bench                 # the quick run, under three minutes (--rounds N: default 3)
 *   npm run bench -- --smoke      # seconds: checks the harness works (CI runs this)
 *   npm run bench -- --out DIR    # reports elsewhere than load-tests/reports/
 *   npm run bench -- --sidecar-node-args='--max-semi-space-size=1'   # try a Node setting
 *
 * Starts the app, a control plane, a Postern sidecar in front of the app and
 * nginx doing the same mTLS termination and proxying (installed with apt when
 * missing), pins the proxies to one core and everything else to the other,
 * and measures in one run: Postern cold (its first seconds after ready), then
 * the app directly, Postern and nginx at the same open-loop rate, then each
 * closed-loop to saturation; plus the authorization decision at 10 to 10,000
 * routes. Prints the budget with PASS/FAIL and writes bench.json, bench.md and
 * bench.svg.
 */
import { execFileSync } from 'node:child_process';
import { mkdtemp, rm } from 'node:fs/promises';
import { availableParallelism, tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { parseArgs } from 'node:util';
import { type BenchResults, budgetLines } from './bench/budget.ts';
import type { LoadSpec } from './bench/generator.ts';
import { combineRounds, type Measured, measure, rssMb } from './bench/measure.ts';
import { budgetTable, writeReports } from './bench/report.ts';
import { LOAD_CPU, PROXY_CPU, startBench, type Target } from './bench/targets.ts';
import { measureDecisionTime } from './decision-time.ts';

const { values } = parseArgs({
  options: {
    smoke: { type: 'boolean', default: false },
    out: { type: 'string', default: resolve(import.meta.dirname, 'reports') },
    // Node flags for the sidecar, space-separated: to measure a setting before adopting it.
    'sidecar-node-args': { type: 'string', default: '' },
    // Another build of bin/postern.ts to run the sidecar from (a bundle, say).
    'sidecar-bin': { type: 'string' },
    // Interleaved rounds of the steady runs; the report gives medians and the spread.
    rounds: { type: 'string' },
    // Keep the work folder (processes' logs, nginx.conf) and print where it is.
    keep: { type: 'boolean', default: false },
  },
});
const smoke = values.smoke!;
const rounds = Number(values.rounds ?? (smoke ? 1 : 3));

const steady = {
  mode: 'open',
  path: '/orders',
  rate: smoke ? 200 : 1000,
  connections: 16,
  seconds: smoke ? 1 : 10,
  warmupSeconds: smoke ? 0.5 : 1,
} as const satisfies Omit<LoadSpec, 'url' | 'clientCertDir'>;
const saturation = {
  ...steady,
  mode: 'closed',
  connections: 32,
  seconds: 5,
  warmupSeconds: 1,
} as const;

/** nginx from Debian when it is missing (the reference hop); undefined when it cannot be had. */
function nginxAvailable(): boolean {
  const has = () => {
    try {
      execFileSync('nginx', ['-v'], { stdio: 'ignore' });
      return true;
    } catch {
      return false;
    }
  };
  if (has()) return true;
  process.stdout.write('nginx is missing; installing nginx-light with apt-get\n');
  try {
    execFileSync('sh', ['-c', 'apt-get update -qq && apt-get install -y -qq nginx-light'], {
      stdio: 'ignore',
    });
  } catch {}
  return has();
}

async function main(): Promise<number> {
  const dir = await mkdtemp(join(tmpdir(), 'postern-bench-'));
  const startedAt = new Date().toISOString();
  const withNginx = !smoke && nginxAvailable();
  const sidecarNodeArgs = values['sidecar-node-args']!.split(' ').filter(Boolean);
  const bench = await startBench(dir, {
    responseBytes: 1024,
    sidecarNodeArgs,
    ...(values['sidecar-bin'] ? { sidecarBin: resolve(values['sidecar-bin']) } : {}),
  });
  try {
    const postern = await bench.startSidecar();
    const pid = postern.proxies![0]!.process.pid!;
    const atStartMb = await rssMb(pid);
    process.stdout.write(`postern ready (RSS ${atStartMb.toFixed(0)} MB); measuring it cold\n`);
    const cold = await measure(postern, { ...steady, warmupSeconds: 0 });
    const nginx: Target | undefined = withNginx ? await bench.startNginx() : undefined;
    const mesh = await bench.startMeshHop();

    // The targets take turns, round after round, so a slow minute of the
    // machine lands on all of them rather than on one.
    const targets = [bench.direct, postern, mesh, ...(nginx ? [nginx] : [])];
    const measured = new Map<Target, Measured[]>(targets.map((target) => [target, []]));
    for (let round = 1; round <= rounds; round++) {
      for (const target of targets) {
        process.stdout.write(
          `round ${round}/${rounds} ${target.name}: ${steady.rate} rps for ${steady.seconds} s\n`,
        );
        measured.get(target)!.push(await measure(target, steady));
      }
    }
    const direct = combineRounds(measured.get(bench.direct)!);
    const posternSteady = combineRounds(measured.get(postern)!);
    const steadyMb = await rssMb(pid);
    const nginxSteady = nginx ? combineRounds(measured.get(nginx)!) : undefined;
    const meshSteady = combineRounds(measured.get(mesh)!);

    let saturationResults: BenchResults['saturation'];
    let afterSaturationMb: number | undefined;
    if (!smoke) {
      process.stdout.write('saturation (closed loop)\n');
      saturationResults = {
        direct: await measure(bench.direct, saturation),
        postern: await measure(postern, saturation),
        ...(nginx ? { nginx: await measure(nginx, saturation) } : {}),
      };
      afterSaturationMb = await rssMb(pid);
    }
    process.stdout.write('authorization decision time\n');
    const decision = [10, 1_000, 10_000].map((routes) =>
      measureDecisionTime(routes, smoke ? 2 : 5, smoke ? 10_000 : 100_000),
    );

    const results: BenchResults = {
      startedAt,
      machine: {
        cpus: availableParallelism(),
        node: process.versions.node,
        pinning: `proxies on core ${PROXY_CPU}; app, control plane and load generator on core ${LOAD_CPU}`,
      },
      load: {
        rate: steady.rate,
        connections: steady.connections,
        responseBytes: 1024,
        seconds: steady.seconds,
        warmupSeconds: steady.warmupSeconds,
      },
      direct,
      postern: posternSteady,
      ...(nginxSteady ? { nginx: nginxSteady } : {}),
      mesh: meshSteady,
      cold,
      ...(saturationResults ? { saturation: saturationResults } : {}),
      rss: {
        atStartMb,
        steadyMb,
        ...(afterSaturationMb === undefined ? {} : { afterSaturationMb }),
      },
      decision,
    };
    const lines = budgetLines(results);
    const files = await writeReports(values.out!, results, lines);
    process.stdout.write(`\n${budgetTable(lines)}\n\nwrote ${files.join(', ')}\n`);
    const errors = [
      direct,
      posternSteady,
      meshSteady,
      cold,
      ...(nginxSteady ? [nginxSteady] : []),
    ].reduce((sum, m) => sum + m.errors, 0);
    if (errors) process.stdout.write(`${errors} request(s) failed; see ${dir}/*.log\n`);
    return errors ? 1 : 0;
  } finally {
    await bench.stop();
    if (values.keep) process.stdout.write(`kept ${dir}\n`);
    else await rm(dir, { recursive: true, force: true });
  }
}

process.exitCode = await main();
