/**
 * Authorization decision time against the number of routes.
 *
 *   npm run bench:decision
 *
 * For 10, 1,000 and 10,000 routes (a third exact, a third templates, a third
 * prefixes, spread over distinct services), compiles the policy once and then
 * times `authorize()` over a fixed mix of requests: hits on each kind of
 * route, requests denied by principal, and misses that fall to the default.
 * Prints compile time and per-decision time (median of 7 runs). It measures
 * the pure function, not the network path: that is the latency harness's job.
 */
import type { Route, RoutePolicy } from '../common/policy/schema.ts';
import { authorize, type RequestFacts } from '../sidecar/policy/authorize.ts';
import { compilePolicies } from '../sidecar/policy/compiled-policy.ts';

const FRONTEND = 'spiffe://cluster.local/ns/shop/sa/frontend';

/** `count` routes: a third exact, a third templates, a third prefixes, over distinct services. */
export function routes(count: number): Route[] {
  const out: Route[] = [];
  for (let i = 0; out.length < count; i++) {
    const allow = [{ principals: [FRONTEND, `spiffe://cluster.local/ns/team${i % 50}/*`] }];
    out.push({
      name: `exact-${i}`,
      match: { methods: ['GET'], path: { exact: `/svc${i}/health` } },
      allow,
    });
    if (out.length < count)
      out.push({ name: `item-${i}`, match: { path: { template: `/svc${i}/items/{id}` } }, allow });
    if (out.length < count)
      out.push({ name: `prefix-${i}`, match: { path: { prefix: `/svc${i}` } }, allow });
  }
  return out;
}

function requests(count: number): RequestFacts[] {
  const services = Math.ceil(count / 3);
  const out: RequestFacts[] = [];
  for (let i = 0; i < 1000; i++) {
    const s = (i * 7919) % services;
    const kind = i % 5;
    const path =
      kind === 0
        ? `/svc${s}/health`
        : kind === 1
          ? `/svc${s}/items/${i}`
          : kind === 2
            ? `/svc${s}/reports/2026/11`
            : kind === 3
              ? `/unknown/${i}`
              : `/svc${s}/items/${i}`;
    out.push({
      method: 'GET',
      path,
      headers: {},
      principal: kind === 4 ? 'spiffe://cluster.local/ns/other/sa/x' : FRONTEND,
    });
  }
  return out;
}

function median(values: number[]): number {
  const sorted = [...values].sort((a, b) => a - b);
  return sorted[Math.floor(sorted.length / 2)]!;
}

export interface DecisionTime {
  readonly routes: number;
  readonly compileMs: number;
  /** Median over `runs` runs of the mean time of one `authorize()`, in ns. */
  readonly nsPerDecision: number;
}

/** Compiles a policy of `count` routes and times `authorize()` over the request mix. */
export function measureDecisionTime(count: number, runs = 7, iterations = 200_000): DecisionTime {
  const now = Date.now();
  const policy: RoutePolicy = {
    apiVersion: 'postern.dev/v1alpha1',
    kind: 'RoutePolicy',
    metadata: { name: 'bench', namespace: 'shop' },
    spec: { routes: routes(count) },
  };
  const compileStart = process.hrtime.bigint();
  const compiled = compilePolicies({ version: '1.1', meshDefault: 'deny', policies: [policy] });
  const compileMs = Number(process.hrtime.bigint() - compileStart) / 1e6;
  const mix = requests(count);
  let sink = 0;
  const times: number[] = [];
  for (let run = 0; run < runs; run++) {
    const start = process.hrtime.bigint();
    for (let i = 0; i < iterations; i++) {
      if (authorize(compiled, mix[i % mix.length]!, now).allowed) sink++;
    }
    times.push(Number(process.hrtime.bigint() - start) / iterations);
  }
  if (sink === 0)
    throw new Error('every decision denied: the benchmark is not exercising allow paths');
  return { routes: count, compileMs, nsPerDecision: median(times) };
}

if (import.meta.main) {
  console.log('routes   compile (ms)   decision (ns, median of 7 runs x 200k)');
  for (const count of [10, 1_000, 10_000]) {
    const { compileMs, nsPerDecision } = measureDecisionTime(count);
    console.log(
      `${String(count).padStart(6)}   ${compileMs.toFixed(1).padStart(12)}   ${nsPerDecision.toFixed(0).padStart(10)}`,
    );
  }
}
