/**
 * The buckets of every local limit in this sidecar, in one bounded map from
 * `limit id + key` to the bucket's TAT (token-bucket.ts). Memory stays
 * bounded under a flood of distinct keys: a full bucket is the same as none,
 * so idle ones are swept away, and past `maxKeys` the least recently used
 * bucket goes (its caller starts again from a full bucket; counted).
 */
import { WITHOUT_KEY } from './bucket-key.ts';
import type { CompiledRateLimit } from './limit.ts';
import { type Take, takeToken } from './token-bucket.ts';

/** Buckets held at most: about 12 MB of keys and TATs at this count (load-tests/rate-limit-memory.ts). */
export const DEFAULT_MAX_BUCKETS = 100_000;
/** How often the sidecar sweeps full buckets away. */
export const BUCKET_SWEEP_MS = 1000;
/** Entries a sweep looks at, so that no sweep holds the event loop for long. */
const SWEEP_BUDGET = 20_000;

export class LocalBuckets {
  /** In least-recently-used order: every taken token moves its bucket to the end. */
  readonly #tats = new Map<string, number>();
  readonly #maxBuckets: number;
  /** Called for each bucket dropped before it was full, to make room. */
  readonly #onEvicted: () => void;

  constructor(maxBuckets = DEFAULT_MAX_BUCKETS, onEvicted: () => void = () => {}) {
    this.#maxBuckets = maxBuckets;
    this.#onEvicted = onEvicted;
  }

  get size(): number {
    return this.#tats.size;
  }

  take(limit: CompiledRateLimit, key: string, nowMs: number): Take {
    const id = key === WITHOUT_KEY ? limit.id : `${limit.id}\n${key}`;
    const tats = this.#tats;
    const tat = tats.get(id);
    const take = takeToken(limit, tat, nowMs);
    if (!take.allowed) return take;
    if (tat !== undefined) tats.delete(id);
    else if (tats.size >= this.#maxBuckets) this.#dropLeastRecentlyUsed(nowMs);
    tats.set(id, take.tat);
    return take;
  }

  /**
   * A cursor that stays in the map between evictions: a fresh iteration
   * from the head would step over every entry deleted since the map was
   * last compacted, which made a take cost 44 µs under a flood of keys.
   */
  #oldest: MapIterator<[string, number]> | undefined;

  #dropLeastRecentlyUsed(nowMs: number): void {
    let next = this.#oldest?.next();
    if (!next || next.done) {
      this.#oldest = this.#tats.entries();
      next = this.#oldest.next();
    }
    if (next.done) return;
    const [id, tat] = next.value;
    this.#tats.delete(id);
    if (tat > nowMs) this.#onEvicted();
  }

  /** Drops full buckets, looking at no more than SWEEP_BUDGET entries from the least recently used. */
  sweep(nowMs: number): void {
    let looked = 0;
    for (const [id, tat] of this.#tats) {
      if (++looked > SWEEP_BUDGET) return;
      if (tat <= nowMs) this.#tats.delete(id);
    }
  }
}
