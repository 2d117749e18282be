/**
 * The load generator, run as its own process (pinned by the harness):
 *
 *   node generator.ts '{"url":..., "mode":"open"|"closed", ...}'
 *
 * Open loop: requests are due at a fixed rate whatever the target does, and
 * each is timed from the instant it was due, not from when it was sent, so a
 * target that stalls is charged for every request that waited behind the
 * stall (no coordinated omission). Closed loop: `connections` requests in
 * flight at all times, for saturation throughput. Latencies go into an HDR
 * histogram (microseconds); the result is one JSON line on stdout.
 */
import { readFileSync } from 'node:fs';
import { build } from 'hdr-histogram-js';
import { Pool } from 'undici';

export interface LoadSpec {
  readonly url: string;
  readonly path: string;
  /** Host header, when the target routes by it (the outbound listener). */
  readonly host?: string;
  /** More request headers on every request (a bearer token, say). */
  readonly headers?: Readonly<Record<string, string>>;
  readonly mode: 'open' | 'closed';
  /** Requests per second (open loop). */
  readonly rate: number;
  readonly seconds: number;
  /** Before measuring: this long at the same load, not recorded. */
  readonly warmupSeconds: number;
  readonly connections: number;
  /** Folder with cert.pem, key.pem, bundle.pem: present a client certificate (mTLS targets). */
  readonly clientCertDir?: string;
}

export interface LoadResult {
  readonly requests: number;
  /** Requests completed during the warm-up (not in the figures; the proxy's CPU reading covers them). */
  readonly warmupRequests?: number;
  readonly errors: number;
  /** First error message, if any. */
  readonly firstError?: string;
  readonly seconds: number;
  /** Requests completed per second of the measured phase. */
  readonly throughput: number;
  /** Latency percentiles, ms (open loop: from the intended send time). */
  readonly latencyMs: {
    readonly p50: number;
    readonly p90: number;
    readonly p99: number;
    readonly p999: number;
    readonly max: number;
  };
  /** Open loop: how late the generator itself sent requests at the p99 (its own limit), ms. */
  readonly sendLagP99Ms: number;
}

function pool(spec: LoadSpec): Pool {
  const dir = spec.clientCertDir;
  return new Pool(spec.url, {
    connections: spec.connections,
    pipelining: 1,
    ...(dir
      ? {
          connect: {
            cert: readFileSync(`${dir}/cert.pem`),
            key: readFileSync(`${dir}/key.pem`),
            ca: readFileSync(`${dir}/bundle.pem`),
            // Mesh certificates name SPIFFE IDs, not hosts; the chain is still verified.
            checkServerIdentity: () => undefined,
          },
        }
      : {}),
  });
}

const newHistogram = () =>
  build({
    lowestDiscernibleValue: 1,
    highestTrackableValue: 120_000_000,
    numberOfSignificantValueDigits: 3,
  });

class Phase {
  readonly latency = newHistogram();
  readonly lag = newHistogram();
  requests = 0;
  errors = 0;
  firstError: string | undefined;
}

async function one(target: Pool, spec: LoadSpec, phase: Phase, startedAt: number): Promise<void> {
  try {
    const res = await target.request({
      method: 'GET',
      path: spec.path,
      headers: { ...spec.headers, ...(spec.host ? { host: spec.host } : {}) },
    });
    await res.body.dump();
    if (res.statusCode !== 200) throw new Error(`status ${res.statusCode}`);
    phase.latency.recordValue(Math.max(1, Math.round((performance.now() - startedAt) * 1000)));
    phase.requests++;
  } catch (error) {
    phase.errors++;
    phase.firstError ??= (error as Error).message;
  }
}

/** Sends at `rate` for `seconds`, timing each request from when it was due. */
async function openLoop(
  target: Pool,
  spec: LoadSpec,
  seconds: number,
  phase: Phase,
): Promise<void> {
  const interval = 1000 / spec.rate;
  const total = Math.round(spec.rate * seconds);
  const start = performance.now();
  const inflight: Promise<void>[] = [];
  let sent = 0;
  while (sent < total) {
    const now = performance.now();
    // Everything due by now goes out at once; each is timed from its own due instant.
    while (sent < total && start + sent * interval <= now) {
      const due = start + sent * interval;
      phase.lag.recordValue(Math.max(1, Math.round((now - due) * 1000)));
      inflight.push(one(target, spec, phase, due));
      sent++;
    }
    const next = start + sent * interval - performance.now();
    await new Promise((resolve) => setTimeout(resolve, Math.max(0, next)));
  }
  await Promise.all(inflight);
}

/** `connections` workers, each sending its next request when the last one ends. */
async function closedLoop(
  target: Pool,
  spec: LoadSpec,
  seconds: number,
  phase: Phase,
): Promise<void> {
  const end = performance.now() + seconds * 1000;
  await Promise.all(
    Array.from({ length: spec.connections }, async () => {
      while (performance.now() < end) await one(target, spec, phase, performance.now());
    }),
  );
}

export async function runLoad(spec: LoadSpec): Promise<LoadResult> {
  const target = pool(spec);
  const drive = spec.mode === 'open' ? openLoop : closedLoop;
  try {
    const warmup = new Phase();
    if (spec.warmupSeconds > 0) await drive(target, spec, spec.warmupSeconds, warmup);
    const phase = new Phase();
    const began = performance.now();
    await drive(target, spec, spec.seconds, phase);
    const seconds = (performance.now() - began) / 1000;
    const ms = (percentile: number) => phase.latency.getValueAtPercentile(percentile) / 1000;
    return {
      requests: phase.requests,
      warmupRequests: warmup.requests,
      errors: phase.errors,
      ...(phase.firstError ? { firstError: phase.firstError } : {}),
      seconds,
      throughput: phase.requests / seconds,
      latencyMs: {
        p50: ms(50),
        p90: ms(90),
        p99: ms(99),
        p999: ms(99.9),
        max: phase.latency.maxValue / 1000,
      },
      sendLagP99Ms: spec.mode === 'open' ? phase.lag.getValueAtPercentile(99) / 1000 : 0,
    };
  } finally {
    await target.close();
  }
}

if (import.meta.main) {
  const result = await runLoad(JSON.parse(process.argv[2]!) as LoadSpec);
  process.stdout.write(`${JSON.stringify(result)}\n`);
}
