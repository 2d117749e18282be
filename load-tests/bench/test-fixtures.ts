import type { Measured } from './measure.ts';

/** One target's measured run for the report tests: 10 s at 1,000 rps, the given p50 and p99, the rest derived. */
export function measured(
  target: string,
  p50: number,
  p99: number,
  extra: Partial<Measured> = {},
): Measured {
  return {
    target,
    requests: 10_000,
    errors: 0,
    seconds: 10,
    throughput: 1000,
    latencyMs: { p50, p90: p50 * 1.5, p99, p999: p99 * 2, max: p99 * 3 },
    sendLagP99Ms: 0.05,
    ...extra,
  };
}
