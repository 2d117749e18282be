/**
 * The full run's matrix (`npm run bench -- --full`), as data: the quick
 * run's load is the baseline, and each dimension varies one thing from it
 * (not the cross product, which would take hours): the request rate, the
 * keep-alive connections, the response size, and the features on the path.
 * A feature that lands on the request path adds its on and off points to
 * FEATURES' policies.
 */

import { BENCH_HEADERS } from './bench-token.ts';
import type { Load } from './measure.ts';
import { BENCH_POLICY, type BenchPolicy } from './targets.ts';

/** One load and policy the full run measures. */
export interface Point {
  /** Requests per second, open loop; or a closed loop (each connection sends its next request when the last one ends). */
  readonly rate: number | 'saturation';
  readonly connections: number;
  readonly responseBytes: number;
  /** orders' policy (targets.ts): `routes: 0` is mTLS only, N >= 1 the bench policy grown to N routes. */
  readonly policy: BenchPolicy;
}

/** The quick run's load: 1,000 rps, 16 keep-alive connections, 1 KB responses, the bench policy (one route, JWT verified). */
export const BASELINE: Point = {
  rate: 1000,
  connections: 16,
  responseBytes: 1024,
  policy: BENCH_POLICY,
};

/**
 * Which targets a point measures besides the app directly: every proxy, or
 * Postern alone, for a dimension along which only Postern's work changes
 * (nginx and the Node floor hold no policy: at each policy point they would
 * repeat their baseline figures, for minutes of the run).
 */
export type Targets = 'every proxy' | 'postern';

export interface Dimension {
  readonly key: keyof Point;
  readonly title: string;
  readonly points: readonly Point[];
  readonly targets: Targets;
}

function vary<K extends keyof Point>(key: K, values: readonly Point[K][]): Point[] {
  return values.map((value) => ({ ...BASELINE, [key]: value }));
}

export const DIMENSIONS: readonly Dimension[] = [
  {
    key: 'rate',
    title: 'Request rate',
    points: vary('rate', [500, 1000, 2000, 'saturation']),
    targets: 'every proxy',
  },
  {
    key: 'connections',
    title: 'Keep-alive connections',
    points: vary('connections', [1, 16, 64]),
    targets: 'every proxy',
  },
  {
    key: 'responseBytes',
    title: 'Response size',
    points: vary('responseBytes', [1024, 64 * 1024]),
    targets: 'every proxy',
  },
  {
    key: 'policy',
    title: 'Features on the path',
    points: vary('policy', [
      { routes: 0 },
      { routes: 1 },
      BENCH_POLICY,
      { routes: 1, jwt: true, rateLimit: 'local' },
      { routes: 1, jwt: true, rateLimit: 'global' },
      { routes: 10, jwt: true },
      { routes: 1_000, jwt: true },
      { routes: 10_000, jwt: true },
    ]),
    targets: 'postern',
  },
];

/** A point's stable name (the JSON report's key). */
export function pointId(point: Point): string {
  return `rate=${point.rate} connections=${point.connections} bytes=${point.responseBytes} ${policyKey(point.policy)}`;
}

/** One policy's name in ids and comparisons: `routes=N`, `+jwt` when a token is verified. */
export function policyKey(policy: BenchPolicy): string {
  return `routes=${policy.routes}${policy.jwt ? '+jwt' : ''}${policy.rateLimit ? `+rate-limit-${policy.rateLimit}` : ''}`;
}

const count = (n: number) => n.toLocaleString('en-US');

/** A point's value along `key`, as the first column of that dimension's table shows it. */
export function valueLabel(point: Point, key: keyof Point): string {
  switch (key) {
    case 'rate':
      return point.rate === 'saturation' ? 'saturation (closed loop)' : `${count(point.rate)} rps`;
    case 'connections':
      return count(point.connections);
    case 'responseBytes':
      return point.responseBytes % 1024 === 0
        ? `${count(point.responseBytes / 1024)} KB`
        : `${count(point.responseBytes)} B`;
    case 'policy':
      return policyLabel(point.policy);
  }
}

export function policyLabel(policy: BenchPolicy): string {
  if (policy.routes === 0) return 'mTLS only';
  return `mTLS + authz${policy.jwt ? ' + JWT' : ''}${policy.rateLimit ? ` + ${policy.rateLimit} rate limit` : ''}, ${count(policy.routes)} route${policy.routes === 1 ? '' : 's'}`;
}

export interface PlannedPoint {
  readonly id: string;
  readonly point: Point;
  readonly targets: Targets;
}

/**
 * Every distinct point once (the baseline sits in every dimension; it is
 * measured once, with every proxy), in the order the run takes them: the
 * baseline, the other open-loop points on the baseline's policy, then the
 * other policies in the order the dimensions name them (one policy edit
 * each), then the closed-loop points, so that a saturation run's heap growth
 * shows in no other point's RSS.
 */
export function plan(
  dimensions: readonly Dimension[] = DIMENSIONS,
  baseline: Point = BASELINE,
): PlannedPoint[] {
  const byId = new Map<string, PlannedPoint>();
  for (const dimension of dimensions) {
    for (const point of dimension.points) {
      const id = pointId(point);
      const seen = byId.get(id);
      const targets =
        seen?.targets === 'every proxy' || dimension.targets === 'every proxy'
          ? 'every proxy'
          : 'postern';
      byId.set(id, { id, point, targets });
    }
  }
  const policies = [
    ...new Set(
      [baseline, ...[...byId.values()].map(({ point }) => point)].map((p) => policyKey(p.policy)),
    ),
  ];
  const baselineId = pointId(baseline);
  const rank = ({ id, point }: PlannedPoint) =>
    id === baselineId
      ? -1
      : (point.rate === 'saturation' ? policies.length : 0) +
        policies.indexOf(policyKey(point.policy));
  return [...byId.values()].sort((a, b) => rank(a) - rank(b));
}

export interface Timing {
  readonly seconds: number;
  readonly warmupSeconds: number;
}

/** The generator's load for `point`: the response size travels as a query parameter the app reads. */
export function pointLoad(point: Point, timing: Timing): Load {
  return {
    mode: point.rate === 'saturation' ? 'closed' : 'open',
    rate: point.rate === 'saturation' ? 0 : point.rate, // a closed loop has none
    connections: point.connections,
    path: `/orders?bytes=${point.responseBytes}`,
    headers: BENCH_HEADERS,
    seconds: timing.seconds,
    warmupSeconds: timing.warmupSeconds,
  };
}

/**
 * A rough length of the run, for the line it prints first: each measurement
 * is its warm-up and measured seconds plus about 1.5 s to start the
 * generator and connect, with `proxies[targets]` proxies beside the app.
 */
export function estimatedSeconds(
  planned: readonly PlannedPoint[],
  timing: Timing & { readonly rounds: number },
  proxies: Readonly<Record<Targets, number>>,
): number {
  const perMeasurement = timing.seconds + timing.warmupSeconds + 1.5;
  return planned.reduce(
    (sum, { targets }) => sum + (1 + proxies[targets]) * timing.rounds * perMeasurement,
    0,
  );
}
