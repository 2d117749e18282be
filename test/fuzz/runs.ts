/**
 * How hard the property-based tests push: a short run in CI (each property
 * 200 cases), a long one on demand (`npm run fuzz`: FUZZ_RUNS=20000). A
 * failure prints the seed and the shrunk input; FUZZ_SEED replays it.
 */
import type fc from 'fast-check';

export const fuzzParameters: fc.Parameters<unknown> = {
  numRuns: Number(process.env.FUZZ_RUNS ?? 200),
  ...(process.env.FUZZ_SEED ? { seed: Number(process.env.FUZZ_SEED) } : {}),
};
