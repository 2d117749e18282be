/**
 * The full run's results as tables, one per dimension of the matrix, as a
 * pure function of what the run measured: bench-full.json (everything, the
 * tables included) and bench-full.md.
 */
import { mkdir, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { median } from '../statistics.ts';
import type { BenchResults } from './budget.ts';
import {
  DIMENSIONS,
  type Dimension,
  type Point,
  pointId,
  policyLabel,
  valueLabel,
} from './matrix.ts';
import type { Measured } from './measure.ts';

/** What one point measured: each target's rounds, in round order. */
export interface PointResult {
  readonly id: string;
  readonly point: Point;
  /** Seconds from saving the point's policy to orders' sidecar holding it, when the run changed the policy for this point. */
  readonly policySeconds?: number;
  readonly targets: readonly { readonly target: string; readonly rounds: readonly Measured[] }[];
}

/** A proxy's RSS when it was ready, and the most it held over the whole run (VmHWM). */
export interface ProxyMemory {
  readonly target: string;
  readonly atStartMb: number;
  readonly peakMb: number;
}

export interface FullResults {
  readonly startedAt: string;
  readonly machine: BenchResults['machine'];
  /** `--full --smoke`: a check of the harness, not a measurement. */
  readonly smoke: boolean;
  readonly rounds: number;
  readonly seconds: number;
  readonly warmupSeconds: number;
  /** Quiet after a policy edit reached the sidecar, before the next load. */
  readonly settleSeconds: number;
  readonly baseline: Point;
  /** In the order the run measured them. */
  readonly points: readonly PointResult[];
  readonly memory: readonly ProxyMemory[];
}

const PERCENTILES = ['p50', 'p90', 'p99', 'p999'] as const;
type Percentile = (typeof PERCENTILES)[number];
type Latencies = Readonly<Record<Percentile, number>>;
const LABEL: Record<Percentile, string> = { p50: 'p50', p90: 'p90', p99: 'p99', p999: 'p99.9' };

/** One target at one point: medians over the rounds, and their spread. */
export interface Row {
  /** The point's value along the table's dimension. */
  readonly value: string;
  readonly target: string;
  /** A saturation point: requests as fast as they complete, not at a rate. */
  readonly closedLoop: boolean;
  readonly rounds: number;
  /** Requests completed per second of the measured phase. */
  readonly throughput: number;
  readonly latencyMs: Latencies;
  /** What the target adds over the app called directly at the same point; absent on the direct row and at saturation. */
  readonly addedMs?: Latencies;
  /** Min and max over the rounds of the target's own p50 and p99. */
  readonly spreadMs: { readonly p50: [number, number]; readonly p99: [number, number] };
  /**
   * The proxies' CPU seconds (user + system, /proc) per 1,000 requests, warm-up
   * requests counted with the warm-up CPU; at a fixed rate the target keeps up
   * with, the same number as cores per 1,000 rps.
   */
  readonly cpuSecondsPerKiloRequest?: {
    readonly median: number;
    readonly spread: [number, number];
  };
  /** The proxies' RSS after the point's last round, MB. */
  readonly rssMb?: number;
  readonly errors: number;
}

export interface Table {
  readonly key: Dimension['key'];
  readonly title: string;
  readonly rows: readonly Row[];
  /** What the table's rows do not say in columns: saturation per core, policy edit times. */
  readonly notes: readonly string[];
}

const range = (values: readonly number[]): [number, number] => [
  Math.min(...values),
  Math.max(...values),
];

/** CPU seconds per 1,000 requests in one round; undefined for the app (no proxy on the path). */
export function cpuSecondsPerKiloRequest(m: Measured): number | undefined {
  if (m.proxyCpuSeconds === undefined) return undefined;
  return (m.proxyCpuSeconds / (m.requests + (m.warmupRequests ?? 0))) * 1000;
}

function row(
  value: string,
  closedLoop: boolean,
  target: string,
  rounds: readonly Measured[],
  direct: Latencies | undefined,
): Row {
  const of = (pick: (m: Measured) => number) => median(rounds.map(pick));
  const latencyMs = Object.fromEntries(
    PERCENTILES.map((p) => [p, of((m) => m.latencyMs[p])]),
  ) as unknown as Latencies;
  const cpu = rounds.flatMap((m) => {
    const perKilo = cpuSecondsPerKiloRequest(m);
    return perKilo === undefined ? [] : [perKilo];
  });
  const rss = rounds[rounds.length - 1]!.proxyRssMb;
  return {
    value,
    target,
    closedLoop,
    rounds: rounds.length,
    throughput: of((m) => m.throughput),
    latencyMs,
    ...(direct
      ? {
          addedMs: Object.fromEntries(
            PERCENTILES.map((p) => [p, latencyMs[p] - direct[p]]),
          ) as unknown as Latencies,
        }
      : {}),
    spreadMs: {
      p50: range(rounds.map((m) => m.latencyMs.p50)),
      p99: range(rounds.map((m) => m.latencyMs.p99)),
    },
    ...(cpu.length
      ? { cpuSecondsPerKiloRequest: { median: median(cpu), spread: range(cpu) } }
      : {}),
    ...(rss === undefined ? {} : { rssMb: rss }),
    errors: rounds.reduce((sum, m) => sum + m.errors, 0),
  };
}

const DIRECT = 'direct';

/** The rows of one point: the app directly first, then each proxy with what it adds over it. */
function pointRows(result: PointResult, value: string): Row[] {
  const direct = result.targets.find((t) => t.target === DIRECT);
  const closedLoop = result.point.rate === 'saturation';
  const directRow = direct && row(value, closedLoop, DIRECT, direct.rounds, undefined);
  return [
    ...(directRow ? [directRow] : []),
    ...result.targets
      .filter((t) => t.target !== DIRECT)
      // A closed loop's latency is its own queue, at the throughput the target
      // reached: nothing to subtract the app's from.
      .map((t) =>
        row(value, closedLoop, t.target, t.rounds, closedLoop ? undefined : directRow?.latencyMs),
      ),
  ];
}

const fixed = (value: number | undefined, digits = 2) =>
  value === undefined || !Number.isFinite(value) ? '–' : value.toFixed(digits);

/** Requests per second of proxy CPU at saturation, and Postern's share of nginx's. */
function saturationNote(rows: readonly Row[]): string[] {
  const perCpuSecond = rows.flatMap((r) =>
    r.closedLoop && r.cpuSecondsPerKiloRequest
      ? [{ target: r.target, value: 1000 / r.cpuSecondsPerKiloRequest.median }]
      : [],
  );
  if (!perCpuSecond.length) return [];
  const of = (target: string) => perCpuSecond.find((p) => p.target === target)?.value;
  const postern = of('postern');
  const nginx = of('nginx');
  return [
    `At saturation, requests per second of proxy CPU: ${perCpuSecond.map((p) => `${p.target} ${fixed(p.value, 0)}`).join(', ')}${postern !== undefined && nginx !== undefined ? ` (Postern ${fixed((postern / nginx) * 100, 0)}% of nginx's; the budget asks ≥ 50%)` : ''}. The generator shares a core with the app, so raw throughput is capped by it: the direct row is its ceiling. Saturation rows give each target's own latency, not an added one: a closed loop's latency is its queue at the throughput the target reached.`,
  ];
}

/** How long each policy edit took to reach orders' sidecar. */
function policyNote(results: readonly PointResult[]): string[] {
  const edits = results.filter((r) => r.policySeconds !== undefined);
  if (!edits.length) return [];
  return [
    `From saving the policy file to orders' sidecar holding it (the control plane validates it, the sidecar validates and compiles it), in run order: ${edits.map((r) => `${policyLabel(r.point.policy)}${r.point.rate === 'saturation' ? ' (back, for saturation)' : ''}: ${fixed(r.policySeconds, 1)} s`).join('; ')}.`,
  ];
}

/** One table per dimension, its points in the dimension's order (a point the run lacks is left out). */
export function tables(
  results: FullResults,
  dimensions: readonly Dimension[] = DIMENSIONS,
): Table[] {
  const byId = new Map(results.points.map((p) => [p.id, p]));
  const baselineId = pointId(results.baseline);
  return dimensions.map((dimension) => {
    const measured = dimension.points.flatMap((point) => byId.get(pointId(point)) ?? []);
    const rows = measured.flatMap((result) =>
      pointRows(
        result,
        `${valueLabel(result.point, dimension.key)}${result.id === baselineId ? ' (baseline)' : ''}`,
      ),
    );
    return {
      key: dimension.key,
      title: dimension.title,
      rows,
      notes: [
        ...saturationNote(rows),
        ...(dimension.key === 'policy' ? policyNote(results.points) : []),
      ],
    };
  });
}

/** The baseline with the dimension's own variable left out, for a table's heading. */
function otherwise(key: Dimension['key'], baseline: Point): string {
  const parts: [Dimension['key'], string][] = [
    ['rate', `${valueLabel(baseline, 'rate')} open loop`],
    ['connections', `${valueLabel(baseline, 'connections')} connections`],
    ['responseBytes', `${valueLabel(baseline, 'responseBytes')} responses`],
    ['policy', 'the bench policy'],
  ];
  return parts
    .filter(([k]) => k !== key)
    .map(([, text]) => text)
    .join(', ');
}

const signed = (value: number) => `${value < 0 ? '-' : '+'}${Math.abs(value).toFixed(2)}`;

export function tableMarkdown(table: Table, baseline: Point): string {
  const lines = table.rows.map((r) => {
    const latency = PERCENTILES.map((p) =>
      r.addedMs ? signed(r.addedMs[p]) : fixed(r.latencyMs[p]),
    );
    const spread =
      r.rounds < 2
        ? '–'
        : `${fixed(r.spreadMs.p50[0])}–${fixed(r.spreadMs.p50[1])} · ${fixed(r.spreadMs.p99[0])}–${fixed(r.spreadMs.p99[1])}`;
    const cpu = r.cpuSecondsPerKiloRequest;
    return `| ${r.value} | ${r.target} | ${fixed(r.throughput, 0)} | ${latency.join(' | ')} | ${spread} | ${cpu ? fixed(cpu.median, 3) : '–'} | ${fixed(r.rssMb, 0)} | ${r.errors} |`;
  });
  return `## ${table.title} (${otherwise(table.key, baseline)})

| ${table.key === 'responseBytes' ? 'response' : table.key} | target | requests/s | ${PERCENTILES.map((p) => LABEL[p]).join(' | ')} | p50 · p99 spread | CPU s per 1k requests | RSS MB | errors |
| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |
${lines.join('\n')}${table.notes.map((note) => `\n\n${note}`).join('')}`;
}

/** Each proxy's RSS at ready, after each point (the lowest and highest), and at its peak over the run. */
function memoryMarkdown(results: FullResults, all: readonly Table[]): string {
  const rows = results.memory.map((m) => {
    const after = all.flatMap((t) =>
      t.rows.filter((r) => r.target === m.target && r.rssMb !== undefined).map((r) => r.rssMb!),
    );
    return `| ${m.target} | ${fixed(m.atStartMb, 0)} | ${after.length ? `${fixed(Math.min(...after), 0)}–${fixed(Math.max(...after), 0)}` : '–'} | ${fixed(m.peakMb, 0)} |`;
  });
  return `## Memory

| proxy | RSS at ready, MB | RSS after each point, MB | peak RSS over the run (VmHWM), MB |
| --- | --- | --- | --- |
${rows.join('\n')}`;
}

export function fullMarkdown(results: FullResults, all: readonly Table[]): string {
  const b = results.baseline;
  const m = results.machine;
  return `# Latency harness, full matrix: ${results.startedAt}

${results.smoke ? `**A smoke run** (\`--full --smoke\`): ${results.seconds} s per point, the app directly and Postern only. It checks the harness and measures nothing.\n\n` : ''}\`npm run bench -- --full\` on ${m.cpus} cores, Node ${m.node}; ${m.pinning}${m.binary ? `; sidecars from ${m.binary}` : ''}.
Each table varies one thing from the baseline (the quick run's load: ${valueLabel(b, 'rate')} open loop, ${valueLabel(b, 'connections')} keep-alive connections, ${valueLabel(b, 'responseBytes')} responses, the bench policy: one route allowing the caller, whose JWT is verified; every request to every target carries the token), which is measured once and shown in every table.
At each point the app directly and each proxy take turns, ${results.rounds} interleaved round${results.rounds === 1 ? '' : 's'} of ${results.warmupSeconds} s warm-up then ${results.seconds} s measured; figures are medians over the rounds.
Open loop: each request is timed from its intended send time.
Direct rows give the app's own latency in ms; proxy rows give what the proxy adds over it at the same point (+ms).
The spread is the lowest and highest p50 and p99 of the target's own rounds (ms).
CPU: the proxy's CPU seconds (user + system, from /proc) per 1,000 requests, warm-up included; at a rate the proxy keeps up with, the same number as cores per 1,000 rps. RSS: after the point's last round.
Postern: one inbound sidecar hop. Node floor: the least a Node mTLS proxy can do (see bench.md). nginx: the same mTLS termination and keep-alive proxying.
"mTLS only": Postern has no switch to turn authorization off (it fails closed), so this is the smallest policy it runs: a RoutePolicy with no routes and \`defaultAction: allow\`, which admits any caller the mTLS handshake admitted. The larger route tables keep the bench policy's route and add routes that never match the request. The policy points measure the app directly and Postern only: nginx and the Node floor hold no policy, so their baseline figures stand.
Order: the baseline, the other open-loop points on the bench policy, then the other policies, then saturation, so that a saturation run's heap growth shows in no other point's RSS; after each policy edit, ${results.settleSeconds} s of quiet before the next load.

${[...all.map((table) => tableMarkdown(table, b)), memoryMarkdown(results, all)].join('\n\n')}
`;
}

/** Writes bench-full.json and bench-full.md into `dir`; returns their paths. */
export async function writeFullReports(dir: string, results: FullResults): Promise<string[]> {
  await mkdir(dir, { recursive: true });
  const all = tables(results);
  const files: [string, string][] = [
    ['bench-full.json', `${JSON.stringify({ ...results, tables: all }, null, 2)}\n`],
    ['bench-full.md', fullMarkdown(results, all)],
  ];
  for (const [name, content] of files) await writeFile(join(dir, name), content);
  return files.map(([name]) => join(dir, name));
}
