/**
 * The latency harness (DESIGN.md, "Performance budget"):
 *
 *   npm run bench                 # the quick run, under three minutes (--rounds N: default 3)
 *   npm run bench -- --full       # the rest of the matrix, 10-15 minutes (--rounds N: default 2)
 *   npm run bench -- --full --dimension policy   # one dimension of it (the features on the path)
 *   npm run bench -- --smoke      # seconds: checks the harness works (CI runs this)
 *   npm run bench -- --full --smoke   # the full run's code path, each point for 0.5 s
 *   npm run bench -- --out DIR    # reports elsewhere than load-tests/reports/
 *   npm run bench -- --sidecar-node-args='--max-semi-space-size=1'   # try a Node setting
 *   npm run bench -- --sidecar-env POSTERN_ACCESS_LOG=/tmp/access.log --out DIR   # a feature a variable switches on
 *   npm run bench -- --otlp-sink --out DIR   # sidecars export OTel (traces, metrics) to a sink here
 *
 * Starts the app, a control plane, a Postern sidecar in front of the app,
 * the Node floor (bench/node-floor.ts: the least a Node mTLS proxy can do) and
 * nginx doing the same mTLS termination and proxying (installed with apt when
 * missing), and pins the proxies to one core and everything else to the other.
 *
 * The quick run measures in one run: Postern and the Node floor cold (each
 * one's first seconds after ready), then the app directly and every proxy at
 * the same open-loop rate, then each closed-loop to saturation; plus the
 * authorization decision at 10 to 10,000 routes. Prints the budget with
 * Postern's PASS/FAIL and the Node floor's value on each line, and writes
 * bench.json, bench.md and bench.svg.
 *
 * The full run (bench/full-run.ts) does not repeat the quick run: it varies
 * one thing at a time from the quick run's load (bench/matrix.ts: rate,
 * connections, response size, the features on the path) and writes
 * bench-full.json and bench-full.md, leaving the quick run's reports alone.
 */
import { mkdtemp, rm } from 'node:fs/promises';
import { createServer } from 'node:http';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { parseArgs } from 'node:util';
import { listen } from '../common/listen.ts';
import { BENCH_HEADERS } from './bench/bench-token.ts';
import { type BenchResults, budgetLines, type Rss } from './bench/budget.ts';
import { fullRun } from './bench/full-run.ts';
import type { LoadSpec } from './bench/generator.ts';
import {
  combineRounds,
  type Measured,
  measure,
  measureInterleaved,
  proxyRssMb,
} from './bench/measure.ts';
import { budgetTable, writeReports } from './bench/report.ts';
import { type Bench, machine, nginxAvailable, startBench, type Target } from './bench/targets.ts';
import { measureDecisionTime } from './decision-time.ts';
import { measureJwtVerifyTime } from './jwt-verify-time.ts';

const { values } = parseArgs({
  options: {
    smoke: { type: 'boolean', default: false },
    out: { type: 'string', default: resolve(import.meta.dirname, 'reports') },
    // Node flags for the sidecar (and the Node floor, which stays Node with the sidecar's
    // settings), space-separated: to measure a setting before adopting it.
    'sidecar-node-args': { type: 'string', default: '' },
    // Another build of bin/postern.ts to run the sidecar from (a bundle, say).
    'sidecar-bin': { type: 'string' },
    // More environment for the sidecars, K=V,K2=V2: to measure a feature switched on by a
    // variable (POSTERN_ACCESS_LOG=FILE, OTEL_EXPORTER_OTLP_ENDPOINT=URL) against the default.
    'sidecar-env': { type: 'string', default: '' },
    // The sidecars export traces, metrics and logs over OTLP/HTTP to a sink in this
    // process that takes and drops them: the cost of OpenTelemetry export on the path.
    'otlp-sink': { type: 'boolean', default: false },
    // The rest of the matrix (bench/matrix.ts) instead of the quick run.
    full: { type: 'boolean', default: false },
    // Interleaved rounds of the steady runs; the report gives medians and the spread.
    rounds: { type: 'string' },
    // --full: seconds measured at each point (after 1 s of warm-up).
    seconds: { type: 'string' },
    // --full: one dimension only (rate, connections, responseBytes, policy), to measure one change quickly.
    dimension: { type: 'string' },
    // Keep the work folder (processes' logs, nginx.conf) and print where it is.
    keep: { type: 'boolean', default: false },
  },
});
const smoke = values.smoke!;
const full = values.full!;
const rounds = Number(values.rounds ?? (smoke ? 1 : full ? 2 : 3));
const sidecarBin = values['sidecar-bin'] ? resolve(values['sidecar-bin']) : undefined;
const say = (line: string) => process.stdout.write(`${line}\n`);

const steady = {
  mode: 'open',
  path: '/orders',
  headers: BENCH_HEADERS,
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

/** A proxy just started: its RSS at ready, then its first seconds under load, no warm-up. */
async function measureCold(target: Target): Promise<{ atStartMb: number; cold: Measured }> {
  const atStartMb = await proxyRssMb(target);
  say(`${target.name} ready (RSS ${atStartMb.toFixed(0)} MB); measuring it cold`);
  return { atStartMb, cold: await measure(target, { ...steady, warmupSeconds: 0 }) };
}

/** Each proxy's RSS now, read one right after another. */
async function rssOfEach(proxies: readonly Target[]): Promise<Map<Target, number>> {
  const mb = new Map<Target, number>();
  for (const proxy of proxies) mb.set(proxy, await proxyRssMb(proxy));
  return mb;
}

/** The quick run on `bench`; resolves with the count of failed requests. */
async function quickRun(bench: Bench, startedAt: string, withNginx: boolean): Promise<number> {
  // Each proxy's cold run comes right after it starts, before anything else loads it.
  const postern = await bench.startSidecar();
  const posternCold = await measureCold(postern);
  // The smoke starts the floor too, so that its readiness check (an mTLS
  // request relayed to the app) proves it works; measuring it would add
  // seconds to the smoke, so only runs without --smoke do.
  const startedFloor = await bench.startNodeFloor();
  const nodeFloor = smoke ? undefined : startedFloor;
  const floorCold = nodeFloor && (await measureCold(nodeFloor));
  const nginx: Target | undefined = withNginx ? await bench.startNginx() : undefined;
  const mesh = await bench.startMeshHop();
  const gateway = await bench.startGateway();

  const targets = [
    bench.direct,
    ...(nodeFloor ? [nodeFloor] : []),
    postern,
    mesh,
    gateway,
    ...(nginx ? [nginx] : []),
  ];
  const measured = await measureInterleaved(targets, steady, rounds, say);
  const singleProxies = [postern, ...(nodeFloor ? [nodeFloor] : [])];
  const steadyMb = await rssOfEach(singleProxies);
  const combined = (target: Target) => combineRounds(measured.get(target)!);

  let saturationResults: BenchResults['saturation'];
  let afterSaturationMb: Map<Target, number> | undefined;
  if (!smoke) {
    say('saturation (closed loop)');
    saturationResults = {
      direct: await measure(bench.direct, saturation),
      ...(nodeFloor ? { nodeFloor: await measure(nodeFloor, saturation) } : {}),
      postern: await measure(postern, saturation),
      gateway: await measure(gateway, saturation),
      ...(nginx ? { nginx: await measure(nginx, saturation) } : {}),
    };
    afterSaturationMb = await rssOfEach(singleProxies);
  }
  const rssOf = (proxy: Target, atStartMb: number): Rss => ({
    atStartMb,
    steadyMb: steadyMb.get(proxy)!,
    ...(afterSaturationMb ? { afterSaturationMb: afterSaturationMb.get(proxy)! } : {}),
  });
  say('authorization decision time');
  const decision = [10, 1_000, 10_000].map((routes) =>
    measureDecisionTime(routes, smoke ? 2 : 5, smoke ? 10_000 : 100_000),
  );
  say('JWT verification time');
  const jwt = [];
  for (const alg of ['ES256', 'RS256'] as const) {
    jwt.push(
      await measureJwtVerifyTime(alg, smoke ? 1 : 5, smoke ? 20 : 400, smoke ? 1_000 : 200_000),
    );
  }

  const results: BenchResults = {
    startedAt,
    machine: machine(sidecarBin),
    load: {
      rate: steady.rate,
      connections: steady.connections,
      responseBytes: 1024,
      seconds: steady.seconds,
      warmupSeconds: steady.warmupSeconds,
    },
    direct: combined(bench.direct),
    postern: combined(postern),
    ...(nginx ? { nginx: combined(nginx) } : {}),
    mesh: combined(mesh),
    gateway: combined(gateway),
    cold: posternCold.cold,
    ...(nodeFloor && floorCold
      ? {
          nodeFloor: {
            steady: combined(nodeFloor),
            cold: floorCold.cold,
            rss: rssOf(nodeFloor, floorCold.atStartMb),
          },
        }
      : {}),
    ...(saturationResults ? { saturation: saturationResults } : {}),
    rss: rssOf(postern, posternCold.atStartMb),
    decision,
    jwt,
  };
  const lines = budgetLines(results);
  const files = await writeReports(values.out!, results, lines);
  say(`\n${budgetTable(lines)}\n\nwrote ${files.join(', ')}`);
  return [
    ...[...measured.values()].flat(),
    posternCold.cold,
    ...(floorCold ? [floorCold.cold] : []),
  ].reduce((sum, m) => sum + m.errors, 0);
}

/** An OTLP/HTTP endpoint that reads each export and answers 200, as a collector would. */
async function startOtlpSink(): Promise<{ url: string; close(): void; exports: () => number }> {
  let exports = 0;
  const server = createServer((req, res) => {
    req.resume();
    req.on('end', () => {
      exports++;
      res.writeHead(200, { 'content-type': 'application/x-protobuf' }).end();
    });
  });
  const port = await listen(server, 0, '127.0.0.1');
  return { url: `http://127.0.0.1:${port}`, close: () => server.close(), exports: () => exports };
}

async function main(): Promise<number> {
  const dir = await mkdtemp(join(tmpdir(), 'postern-bench-'));
  const sink = values['otlp-sink'] ? await startOtlpSink() : undefined;
  const startedAt = new Date().toISOString();
  const withNginx = !smoke && nginxAvailable(say);
  const bench = await startBench(dir, {
    responseBytes: 1024,
    sidecarNodeArgs: values['sidecar-node-args']!.split(' ').filter(Boolean),
    sidecarEnv: {
      ...Object.fromEntries(
        values['sidecar-env']!.split(',')
          .filter(Boolean)
          .map((pair) => [pair.slice(0, pair.indexOf('=')), pair.slice(pair.indexOf('=') + 1)]),
      ),
      ...(sink ? { OTEL_EXPORTER_OTLP_ENDPOINT: sink.url } : {}),
    },
    ...(sidecarBin ? { sidecarBin } : {}),
  });
  try {
    const errors = full
      ? await fullRun(bench, {
          startedAt,
          machine: machine(sidecarBin),
          rounds,
          seconds: Number(values.seconds ?? (smoke ? 0.5 : 8)),
          warmupSeconds: smoke ? 0.25 : 1,
          settleSeconds: smoke ? 0.5 : 2,
          smoke,
          withNginx,
          out: values.out!,
          say,
          ...(values.dimension ? { dimension: values.dimension } : {}),
        })
      : await quickRun(bench, startedAt, withNginx);
    if (errors) say(`${errors} request(s) failed; see ${dir}/*.log (--keep keeps them)`);
    if (sink) say(`the OTLP sink took ${sink.exports()} exports`);
    return errors ? 1 : 0;
  } finally {
    await bench.stop();
    sink?.close();
    if (values.keep) say(`kept ${dir}`);
    else await rm(dir, { recursive: true, force: true });
  }
}

process.exitCode = await main();
