/**
 * The token bucket every rate limit uses, local or global, written as GCRA
 * (the generic cell rate algorithm): a bucket is one number, the theoretical
 * arrival time (TAT) of the next request if the caller kept exactly to the
 * rate. A token is `intervalMs` of schedule; a caller may run ahead of the
 * schedule by at most `capacity` tokens. A bucket whose TAT has passed is
 * full, which is the same as no bucket: idle keys can be forgotten.
 *
 * The Redis script in global-buckets.ts is this function in Lua; the two are
 * tested against the same cases.
 */

/** The shape of a bucket, fixed when a policy is compiled. */
export interface BucketShape {
  /** Milliseconds of schedule one request uses: per / requests. */
  readonly intervalMs: number;
  /** Requests the bucket holds when full: requests + burst. */
  readonly capacity: number;
}

export interface Take {
  readonly allowed: boolean;
  /** The bucket's TAT after this request (unchanged when refused); local buckets only (0 from Redis). */
  readonly tat: number;
  /** Whole tokens left after this request. */
  readonly remaining: number;
  /** Refused: milliseconds until one token is back. Allowed: 0. */
  readonly retryAfterMs: number;
  /** Milliseconds until the bucket is full again. */
  readonly resetMs: number;
}

// TATs are sums of fractional intervals (1000 / 3 ms...): a nanosecond of
// rounding must not cost a caller its last token.
const ROUNDING_MS = 1e-6;

/** Takes one token from the bucket whose TAT is `tat` (undefined: a full bucket), at `nowMs`. */
export function takeToken(shape: BucketShape, tat: number | undefined, nowMs: number): Take {
  const start = tat === undefined || tat < nowMs ? nowMs : tat;
  const next = start + shape.intervalMs;
  const ahead = next - nowMs;
  const limit = shape.capacity * shape.intervalMs;
  if (ahead > limit + ROUNDING_MS) {
    return {
      allowed: false,
      tat: start,
      remaining: 0,
      retryAfterMs: ahead - limit,
      resetMs: start - nowMs,
    };
  }
  return {
    allowed: true,
    tat: next,
    remaining: Math.floor((limit - ahead + ROUNDING_MS) / shape.intervalMs),
    retryAfterMs: 0,
    resetMs: ahead,
  };
}
