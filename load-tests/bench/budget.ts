/**
 * The performance budget (DESIGN.md, "Performance budget") as a pure
 * function of one run's results: each line with its measured value and
 * PASS/FAIL, or n/a when the run did not measure it (nginx missing, a smoke
 * run).
 */
import type { DecisionTime } from '../decision-time.ts';
import type { Combined, Measured } from './measure.ts';

export interface BenchResults {
  readonly startedAt: string;
  readonly machine: { readonly cpus: number; readonly node: string; readonly pinning: string };
  readonly load: {
    readonly rate: number;
    readonly connections: number;
    readonly responseBytes: number;
    readonly seconds: number;
    readonly warmupSeconds: number;
  };
  /** The app called directly: the floor every target is compared with. Medians over the rounds. */
  readonly direct: Measured | Combined;
  readonly postern: Measured | Combined;
  readonly nginx?: Measured | Combined;
  /** The full mesh hop: app → frontend's outbound → orders' inbound → app (two sidecars). */
  readonly mesh?: Measured | Combined;
  /** Postern during its first seconds after ready, no warm-up. */
  readonly cold: Measured;
  /** Closed loop: the generator against the app (its own ceiling), and each proxy. */
  readonly saturation?: {
    readonly direct: Measured;
    readonly postern: Measured;
    readonly nginx?: Measured;
  };
  readonly rss: {
    readonly atStartMb: number;
    readonly steadyMb: number;
    readonly afterSaturationMb?: number;
  };
  readonly decision: readonly DecisionTime[];
}

export interface BudgetLine {
  readonly what: string;
  readonly budget: string;
  readonly measured: string;
  /** Undefined: not measured in this run. */
  readonly pass: boolean | undefined;
}

/** Proxy CPU cores used per 1,000 requests per second of offered load. */
export function corePerKiloRps(m: Measured, rate: number, loadSeconds: number): number {
  return (m.proxyCpuSeconds ?? Number.NaN) / loadSeconds / (rate / 1000);
}

/** Closed-loop requests completed per second of the proxy's own CPU. */
export function requestsPerCpuSecond(m: Measured): number {
  return m.requests / (m.proxyCpuSeconds ?? Number.NaN);
}

const ms = (value: number) => `${value.toFixed(2)} ms`;
const line = (what: string, budget: string, measured: string, pass: boolean | undefined) => ({
  what,
  budget,
  measured,
  pass,
});

/**
 * "Flat within noise" for the authorization decision: going from 10 to
 * 10,000 routes may add at most 1% of the p50 latency budget (5 µs) to a
 * decision, far below what any latency percentile can resolve.
 */
const FLAT_DECISION_NS = 5_000;

export function budgetLines(r: BenchResults): BudgetLine[] {
  const loadSeconds = r.load.seconds + r.load.warmupSeconds;
  const addedP50 = r.postern.latencyMs.p50 - r.direct.latencyMs.p50;
  const addedP99 = r.postern.latencyMs.p99 - r.direct.latencyMs.p99;
  const cores = corePerKiloRps(r.postern, r.load.rate, loadSeconds);
  const coldP99 = r.cold.latencyMs.p99 - r.direct.latencyMs.p99;
  const lines: BudgetLine[] = [
    line('added latency p50', '≤ 0.50 ms', ms(addedP50), addedP50 <= 0.5),
    line('added latency p99', '≤ 2.00 ms', ms(addedP99), addedP99 <= 2),
    line(
      'sidecar CPU per 1,000 rps',
      '≤ 0.25 core',
      `${cores.toFixed(3)} core`,
      Number.isFinite(cores) ? cores <= 0.25 : undefined,
    ),
    line(
      `sidecar RSS steady at ${r.load.rate} rps`,
      '≤ 80 MB',
      `${r.rss.steadyMb.toFixed(0)} MB`,
      r.rss.steadyMb <= 80,
    ),
  ];
  const after = r.rss.afterSaturationMb;
  lines.push(
    line(
      'sidecar RSS after a saturation run',
      '≤ 120 MB',
      after === undefined ? 'not measured' : `${after.toFixed(0)} MB`,
      after === undefined ? undefined : after <= 120,
    ),
    line('first 10 s after ready: added p99', '≤ 10.00 ms', ms(coldP99), coldP99 <= 10),
  );
  const sat = r.saturation;
  if (sat?.nginx) {
    const share = requestsPerCpuSecond(sat.postern) / requestsPerCpuSecond(sat.nginx);
    lines.push(
      line(
        'saturation: requests per core-second vs nginx',
        '≥ 50%',
        `${(share * 100).toFixed(0)}% (${requestsPerCpuSecond(sat.postern).toFixed(0)} vs ${requestsPerCpuSecond(sat.nginx).toFixed(0)})`,
        share >= 0.5,
      ),
    );
  } else {
    lines.push(
      line('saturation: requests per core-second vs nginx', '≥ 50%', 'not measured', undefined),
    );
  }
  const fewest = r.decision.find((d) => d.routes === 10);
  const most = r.decision.find((d) => d.routes === 10_000);
  const growth = fewest && most ? most.nsPerDecision - fewest.nsPerDecision : Number.NaN;
  lines.push(
    line(
      'authorization decision, 10 → 10,000 routes',
      'flat: grows < 5 µs',
      Number.isFinite(growth)
        ? `${fewest!.nsPerDecision.toFixed(0)} → ${most!.nsPerDecision.toFixed(0)} ns`
        : 'not measured',
      Number.isFinite(growth) ? growth < FLAT_DECISION_NS : undefined,
    ),
  );
  return lines;
}
