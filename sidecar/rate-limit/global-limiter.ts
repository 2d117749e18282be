/**
 * Global limits: every replica of a destination spends from one bucket in
 * Redis, and when Redis cannot answer, each replica's share of the limit
 * (its requests / replicas) takes over at once, in memory, and hands back
 * when Redis answers again (DESIGN.md, Rate limits).
 *
 * While Redis is healthy a take is one round trip, bounded by the command
 * timeout; while it is not, a take is answered synchronously from the
 * share, so no request waits on a dead Redis, and only the requests in
 * flight when it failed met the failure: `failureMode` says what they get.
 */
import type { Logger } from '../../common/log.ts';
import type { SidecarMetrics } from '../telemetry/metrics.ts';
import type { CompiledRateLimit } from './limit.ts';
import type { LocalBuckets } from './local-buckets.ts';
import type { RedisBuckets } from './redis-buckets.ts';
import type { Take } from './token-bucket.ts';

/** What a request whose Redis call failed gets under `failureMode: closed`. */
export const FAILED_CLOSED = Object.freeze({ failedClosed: true as const });
export type GlobalTake = Take | typeof FAILED_CLOSED;

/** How often a Redis that stopped answering is asked again (PING). */
const PROBE_MS = 500;

/** A replica's share of `limit`: the same rate spread over `replicas`, its bucket as large as its share allows. */
export function shareOf(limit: CompiledRateLimit, replicas: number): CompiledRateLimit {
  if (replicas <= 1) return limit;
  return Object.freeze({
    ...limit,
    id: `${limit.id}|share 1/${replicas}`,
    intervalMs: limit.intervalMs * replicas,
    capacity: Math.max(1, Math.floor(limit.capacity / replicas)),
  });
}

export interface GlobalLimiterOptions {
  /** Where the shares count (the sidecar's local buckets). */
  readonly buckets: LocalBuckets;
  readonly logger: Logger;
  readonly metrics: SidecarMetrics;
  readonly now: () => number;
  readonly commandTimeoutMs: number;
}

export class GlobalLimiter {
  readonly #options: GlobalLimiterOptions;
  #url: string | undefined;
  #keyPrefix: string | undefined;
  #redis: RedisBuckets | undefined;
  /** Redis answers: takes go there. False from the first failure until it answers again. */
  #healthy = false;
  /** A failure was announced (logged, counted) and not yet its recovery. */
  #tookOver = false;
  #probe: NodeJS.Timeout | undefined;
  readonly #shares = new WeakMap<
    CompiledRateLimit,
    { replicas: number; share: CompiledRateLimit }
  >();

  constructor(options: GlobalLimiterOptions) {
    this.#options = options;
  }

  /** Follows the snapshot: connects to a new Redis URL, leaves one no longer named. */
  configure(url: string | undefined, keyPrefix?: string): void {
    if (url === this.#url && keyPrefix === this.#keyPrefix) return;
    this.#disconnect();
    this.#url = url;
    this.#keyPrefix = keyPrefix;
    if (!url) return;
    // ioredis loads only in a sidecar that has a Redis to talk to.
    void import('./redis-buckets.ts').then(({ RedisBuckets }) => {
      if (this.#url !== url) return;
      // Events of a client already replaced (its close, say) are not news.
      const redis: RedisBuckets = new RedisBuckets({
        url,
        ...(keyPrefix ? { keyPrefix } : {}),
        commandTimeoutMs: this.#options.commandTimeoutMs,
        onReady: () => {
          if (this.#redis === redis) this.#recovered();
        },
        onTrouble: (reason) => {
          if (this.#redis === redis) this.#failed(reason);
        },
      });
      this.#redis = redis;
    });
  }

  /** Whether takes go to Redis now (for /config). */
  get mode(): 'redis' | 'local share' {
    return this.#healthy ? 'redis' : 'local share';
  }

  take(limit: CompiledRateLimit, key: string, replicas: number): GlobalTake | Promise<GlobalTake> {
    const redis = this.#redis;
    if (!this.#healthy || !redis) return this.#fromShare(limit, key, replicas);
    return redis.take(limit, key).catch((error: Error) => {
      this.#options.metrics.redisErrors.inc(
        /timed? ?out/i.test(error.message) ? 'timeout' : 'error',
      );
      this.#failed(error.message);
      return limit.failureMode === 'closed' ? FAILED_CLOSED : this.#fromShare(limit, key, replicas);
    });
  }

  #fromShare(limit: CompiledRateLimit, key: string, replicas: number): Take {
    let cached = this.#shares.get(limit);
    if (cached?.replicas !== replicas) {
      cached = { replicas, share: shareOf(limit, replicas) };
      this.#shares.set(limit, cached);
    }
    return this.#options.buckets.take(cached.share, key, this.#options.now());
  }

  #failed(reason: string): void {
    this.#healthy = false;
    if (!this.#tookOver && this.#redis) {
      this.#tookOver = true;
      this.#options.metrics.rateLimitStore.inc('takeover');
      this.#options.logger.warn(
        "Redis does not answer: each global rate limit is this replica's share until it does",
        { reason },
      );
    }
    this.#startProbe();
  }

  #recovered(): void {
    this.#healthy = true;
    clearInterval(this.#probe);
    this.#probe = undefined;
    if (this.#tookOver) {
      this.#tookOver = false;
      this.#options.metrics.rateLimitStore.inc('handback');
      this.#options.logger.info('Redis answers again: global rate limits count there');
    }
  }

  /**
   * A connection that closed comes back by itself (ioredis reconnects, then
   * `ready`); a Redis that hangs keeps its connection, so it is asked.
   */
  #startProbe(): void {
    if (this.#probe) return;
    this.#probe = setInterval(() => {
      const redis = this.#redis;
      if (!redis?.ready) return;
      redis.ping().then(
        () => this.#recovered(),
        () => {},
      );
    }, PROBE_MS);
    this.#probe.unref();
  }

  #disconnect(): void {
    clearInterval(this.#probe);
    this.#probe = undefined;
    this.#redis?.close();
    this.#redis = undefined;
    this.#healthy = false;
    this.#tookOver = false;
  }

  close(): void {
    this.#url = undefined;
    this.#disconnect();
  }
}
