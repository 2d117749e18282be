const DURATION = /^([1-9][0-9]*)(ms|s|m|h)$/;
const DURATION_MS: Record<string, number> = { ms: 1, s: 1000, m: 60_000, h: 3_600_000 };

/** Kubernetes-style durations (100ms, 1s, 5m, 24h) to milliseconds; throws on anything else. */
export function parseDuration(text: string): number {
  const match = DURATION.exec(text);
  if (!match)
    throw new Error(
      `expected a duration such as 100ms, 1s, 5m or 24h; found ${JSON.stringify(text)}`,
    );
  return Number(match[1]) * DURATION_MS[match[2]!]!;
}
