/**
 * Sequences of requests and what a bucket must answer to each: the contract
 * of the token bucket, run against the local implementation
 * (token-bucket.test.ts) and the Redis script (global-buckets.test.ts), so
 * local and global limits mean the same.
 */
export interface BucketScenario {
  readonly name: string;
  readonly requests: number;
  readonly perMs: number;
  readonly burst: number;
  /** Each request: when (ms from the first), whether it is allowed, and the tokens left after it. */
  readonly steps: readonly {
    readonly atMs: number;
    readonly allowed: boolean;
    readonly remaining: number;
  }[];
}

const at = (atMs: number, allowed: boolean, remaining: number) => ({ atMs, allowed, remaining });

export const BUCKET_SCENARIOS: readonly BucketScenario[] = [
  {
    name: 'a full bucket admits `requests` at once, then refuses until a token is back',
    requests: 3,
    perMs: 3000,
    burst: 0,
    steps: [
      at(0, true, 2),
      at(0, true, 1),
      at(0, true, 0),
      at(0, false, 0),
      at(999, false, 0),
      at(1000, true, 0),
    ],
  },
  {
    name: 'burst adds to what a full bucket admits at once, not to the sustained rate',
    requests: 2,
    perMs: 1000,
    burst: 2,
    steps: [
      at(0, true, 3),
      at(0, true, 2),
      at(0, true, 1),
      at(0, true, 0),
      at(0, false, 0),
      at(500, true, 0),
      at(500, false, 0),
      at(1000, true, 0),
    ],
  },
  {
    name: 'an idle caller gets its whole bucket back, never more',
    requests: 2,
    perMs: 1000,
    burst: 0,
    steps: [
      at(0, true, 1),
      at(0, true, 0),
      at(60_000, true, 1),
      at(60_000, true, 0),
      at(60_000, false, 0),
    ],
  },
  {
    name: 'a caller keeping to the rate is never refused, with fractional intervals',
    requests: 3,
    perMs: 1000,
    burst: 0,
    steps: Array.from({ length: 30 }, (_, i) => at((i * 1000) / 3, true, 2)),
  },
];
