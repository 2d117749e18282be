/**
 * The full run (`npm run bench -- --full`): every point of the matrix
 * (matrix.ts) against the app directly, Postern, the Node floor and nginx,
 * the targets taking turns at each point; orders' policy edited on disk
 * between the policy points, never a new bench. Writes bench-full.json and
 * bench-full.md; leaves the quick run's reports alone.
 */

import type { BenchResults } from './budget.ts';
import {
  type FullResults,
  type PointResult,
  type ProxyMemory,
  tableMarkdown,
  tables,
  writeFullReports,
} from './full-report.ts';
import {
  BASELINE,
  DIMENSIONS,
  estimatedSeconds,
  plan,
  pointLoad,
  policyKey,
  policyLabel,
  type Timing,
} from './matrix.ts';
import { measureInterleaved, peakRssMb, proxyRssMb } from './measure.ts';
import type { Bench, Target } from './targets.ts';

export interface FullRunOptions extends Timing {
  readonly startedAt: string;
  readonly machine: BenchResults['machine'];
  readonly rounds: number;
  /** Quiet after a policy edit reached the sidecar, before the next load. */
  readonly settleSeconds: number;
  /** Postern the only proxy (no Node floor, no nginx), for a check of the harness. */
  readonly smoke: boolean;
  readonly withNginx: boolean;
  readonly out: string;
  readonly say: (line: string) => void;
  /** Only this dimension's points (a Dimension key); all of them otherwise. */
  readonly dimension?: string;
}

/** Runs the matrix on `bench` (started with the bench policy); resolves with the count of failed requests. */
export async function fullRun(bench: Bench, options: FullRunOptions): Promise<number> {
  const { say } = options;
  const postern = await bench.startSidecar();
  const nodeFloor = options.smoke ? undefined : await bench.startNodeFloor();
  const nginx = options.withNginx && !options.smoke ? await bench.startNginx() : undefined;
  // The quick run's order, so the two reports read alike.
  const everyProxy = [...(nodeFloor ? [nodeFloor] : []), postern, ...(nginx ? [nginx] : [])];
  const atStartMb = new Map<Target, number>();
  for (const proxy of everyProxy) atStartMb.set(proxy, await proxyRssMb(proxy));

  const dimensions = options.dimension
    ? DIMENSIONS.filter((d) => d.key === options.dimension)
    : DIMENSIONS;
  if (!dimensions.length) {
    throw new Error(
      `--dimension: expected one of ${DIMENSIONS.map((d) => d.key).join(', ')}; found ${JSON.stringify(options.dimension)}`,
    );
  }
  const planned = plan(dimensions);
  const minutes =
    estimatedSeconds(planned, options, { 'every proxy': everyProxy.length, postern: 1 }) / 60;
  say(
    `${planned.length} points, ${options.rounds} round(s) each: about ${Math.max(1, Math.round(minutes))} min of load`,
  );
  let policy = BASELINE.policy;
  const points: PointResult[] = [];
  for (const [index, { id, point, targets }] of planned.entries()) {
    let policySeconds: number | undefined;
    if (policyKey(point.policy) !== policyKey(policy)) {
      say(`policy: ${policyLabel(point.policy)}`);
      policySeconds = await bench.applyPolicy(point.policy);
      policy = point.policy;
      say(`orders' sidecar holds it after ${policySeconds.toFixed(1)} s`);
      // The old snapshot's garbage and the edit's work out of the way of the load.
      await new Promise((resolve) => setTimeout(resolve, options.settleSeconds * 1000));
    }
    const onPath = [bench.direct, ...(targets === 'every proxy' ? everyProxy : [postern])];
    const measured = await measureInterleaved(
      onPath,
      pointLoad(point, options),
      options.rounds,
      (line) => say(`[${index + 1}/${planned.length} ${id}] ${line}`),
    );
    points.push({
      id,
      point,
      ...(policySeconds === undefined ? {} : { policySeconds }),
      targets: onPath.map((target) => ({ target: target.name, rounds: measured.get(target)! })),
    });
  }

  const memory: ProxyMemory[] = [];
  for (const proxy of everyProxy) {
    memory.push({
      target: proxy.name,
      atStartMb: atStartMb.get(proxy)!,
      peakMb: await peakRssMb(proxy.proxies![0]!.process.pid!),
    });
  }
  const results: FullResults = {
    startedAt: options.startedAt,
    machine: options.machine,
    smoke: options.smoke,
    rounds: options.rounds,
    seconds: options.seconds,
    warmupSeconds: options.warmupSeconds,
    settleSeconds: options.settleSeconds,
    baseline: BASELINE,
    points,
    memory,
  };
  const files = await writeFullReports(options.out, results);
  for (const table of tables(results)) say(`\n${tableMarkdown(table, BASELINE)}`);
  say(`\nwrote ${files.join(', ')}`);
  return points
    .flatMap((p) => p.targets.flatMap((t) => t.rounds))
    .reduce((sum, m) => sum + m.errors, 0);
}
