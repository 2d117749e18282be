/**
 * The performance budget (DESIGN.md, "Performance budget") as a pure
 * function of one run's results: each line with Postern's measured value
 * and PASS/FAIL, or n/a when the run did not measure it (nginx missing, a
 * smoke run), and beside it the Node floor's value on the same line: how
 * much of the line Node itself takes.
 */
import type { DecisionTime } from '../decision-time.ts';
import type { JwtVerifyTime } from '../jwt-verify-time.ts';
import type { Combined, Measured } from './measure.ts';

/** A proxy's RSS at ready, after the steady rounds and after its saturation run. */
export interface Rss {
  readonly atStartMb: number;
  readonly steadyMb: number;
  readonly afterSaturationMb?: number;
}

export interface BenchResults {
  readonly startedAt: string;
  readonly machine: {
    readonly cpus: number;
    readonly node: string;
    readonly pinning: string;
    /** Which `postern` the sidecars ran: the bundle (dist/postern.js) or the TypeScript source. */
    readonly binary?: string;
  };
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
  /** The micro API gateway: client → `postern gateway` (TLS, JWT, HTTPRoute) → orders' inbound → app (two proxies, as the mesh hop). */
  readonly gateway?: Measured | Combined;
  /** Postern during its first seconds after ready, no warm-up. */
  readonly cold: Measured;
  /**
   * The Node floor (node-floor.ts), measured as Postern is: what Node itself
   * costs on each budget line, for comparison only. Full runs only.
   */
  readonly nodeFloor?: {
    readonly steady: Measured | Combined;
    readonly cold: Measured;
    readonly rss: Rss;
  };
  /** Closed loop: the generator against the app (its own ceiling), and each proxy. */
  readonly saturation?: {
    readonly direct: Measured;
    readonly postern: Measured;
    readonly nodeFloor?: Measured;
    readonly nginx?: Measured;
    readonly gateway?: Measured;
  };
  /** Postern's. */
  readonly rss: Rss;
  readonly decision: readonly DecisionTime[];
  /** JWT verification, cached and not (absent in reports from before it was measured). */
  readonly jwt?: readonly JwtVerifyTime[];
}

export interface BudgetLine {
  readonly what: string;
  readonly budget: string;
  /** Postern's value, which PASS/FAIL judges. */
  readonly measured: string;
  /** The Node floor's value on the same line; '–' where the line is not about a proxy. */
  readonly nodeFloor: string;
  /** Undefined: not measured in this run. */
  readonly pass: boolean | undefined;
}

/** Proxy CPU cores used per 1,000 requests per second of offered load. */
export function corePerKiloRps(m: Measured, rate: number, loadSeconds: number): number {
  return (m.proxyCpuSeconds ?? Number.NaN) / loadSeconds / (rate / 1000);
}

/** Closed-loop requests completed per second of the proxy's own CPU. */
export function requestsPerCpuSecond(m: Measured): number {
  // The CPU reading spans the warm-up too, so its requests count as well.
  return (m.requests + (m.warmupRequests ?? 0)) / (m.proxyCpuSeconds ?? Number.NaN);
}

/** One proxy's figures on the budget's lines (NaN: not measured in this run). */
interface Figures {
  readonly addedP50: number;
  readonly addedP99: number;
  readonly cores: number;
  readonly steadyMb: number;
  readonly afterSaturationMb: number;
  readonly coldAddedP99: number;
  readonly perCpuSecond: number;
  readonly nginxPerCpuSecond: number;
}

function figuresOf(
  r: BenchResults,
  proxy: { steady: Measured; cold: Measured; rss: Rss; saturation: Measured | undefined },
): Figures {
  const { direct, load, saturation } = r;
  const perCpuSecond = (m: Measured | undefined) => (m ? requestsPerCpuSecond(m) : Number.NaN);
  return {
    addedP50: proxy.steady.latencyMs.p50 - direct.latencyMs.p50,
    addedP99: proxy.steady.latencyMs.p99 - direct.latencyMs.p99,
    cores: corePerKiloRps(proxy.steady, load.rate, load.seconds + load.warmupSeconds),
    steadyMb: proxy.rss.steadyMb,
    afterSaturationMb: proxy.rss.afterSaturationMb ?? Number.NaN,
    coldAddedP99: proxy.cold.latencyMs.p99 - direct.latencyMs.p99,
    perCpuSecond: perCpuSecond(proxy.saturation),
    nginxPerCpuSecond: perCpuSecond(saturation?.nginx),
  };
}

const ms = (value: number) => `${value.toFixed(2)} ms`;
const mb = (value: number) => `${value.toFixed(0)} MB`;

/**
 * "Flat within noise" for the authorization decision: going from 10 to
 * 10,000 routes may add at most 1% of the p50 latency budget (5 µs) to a
 * decision, far below what any latency percentile can resolve.
 */
const FLAT_DECISION_NS = 5_000;

export function budgetLines(r: BenchResults): BudgetLine[] {
  const postern = figuresOf(r, {
    steady: r.postern,
    cold: r.cold,
    rss: r.rss,
    saturation: r.saturation?.postern,
  });
  const nodeFloor =
    r.nodeFloor && figuresOf(r, { ...r.nodeFloor, saturation: r.saturation?.nodeFloor });
  /** A line judged on Postern's `pick`ed figure, with the Node floor's beside it. */
  const line = (
    what: string,
    budget: string,
    pick: (f: Figures) => number,
    show: (value: number, f: Figures) => string,
    within: (value: number) => boolean,
  ): BudgetLine => {
    const value = pick(postern);
    const measured = Number.isFinite(value);
    const floorValue = nodeFloor ? pick(nodeFloor) : Number.NaN;
    return {
      what,
      budget,
      measured: measured ? show(value, postern) : 'not measured',
      nodeFloor: Number.isFinite(floorValue) ? show(floorValue, nodeFloor!) : 'not measured',
      pass: measured ? within(value) : undefined,
    };
  };
  const fewest = r.decision.find((d) => d.routes === 10);
  const most = r.decision.find((d) => d.routes === 10_000);
  const growth = fewest && most ? most.nsPerDecision - fewest.nsPerDecision : Number.NaN;
  return [
    line(
      'added latency p50',
      '≤ 0.50 ms',
      (f) => f.addedP50,
      ms,
      (v) => v <= 0.5,
    ),
    line(
      'added latency p99',
      '≤ 2.00 ms',
      (f) => f.addedP99,
      ms,
      (v) => v <= 2,
    ),
    line(
      'sidecar CPU per 1,000 rps',
      '≤ 0.25 core',
      (f) => f.cores,
      (v) => `${v.toFixed(3)} core`,
      (v) => v <= 0.25,
    ),
    line(
      `sidecar RSS steady at ${r.load.rate} rps`,
      '≤ 80 MB',
      (f) => f.steadyMb,
      mb,
      (v) => v <= 80,
    ),
    line(
      'sidecar RSS after a saturation run',
      '≤ 120 MB',
      (f) => f.afterSaturationMb,
      mb,
      (v) => v <= 120,
    ),
    line(
      'first 10 s after ready: added p99',
      '≤ 10.00 ms',
      (f) => f.coldAddedP99,
      ms,
      (v) => v <= 10,
    ),
    line(
      'saturation: requests per core-second vs nginx',
      '≥ 50%',
      (f) => f.perCpuSecond / f.nginxPerCpuSecond,
      (v, f) =>
        `${(v * 100).toFixed(0)}% (${f.perCpuSecond.toFixed(0)} vs ${f.nginxPerCpuSecond.toFixed(0)})`,
      (v) => v >= 0.5,
    ),
    {
      what: 'authorization decision, 10 → 10,000 routes',
      budget: 'flat: grows < 5 µs',
      measured: Number.isFinite(growth)
        ? `${fewest!.nsPerDecision.toFixed(0)} → ${most!.nsPerDecision.toFixed(0)} ns`
        : 'not measured',
      nodeFloor: '–',
      pass: Number.isFinite(growth) ? growth < FLAT_DECISION_NS : undefined,
    },
  ];
}
