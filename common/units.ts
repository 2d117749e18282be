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

const BYTES = /^([1-9][0-9]*)(Ki|Mi|Gi|Ti|k|M|G|T)?$/;
const BYTE_UNITS: Record<string, number> = {
  '': 1,
  Ki: 2 ** 10,
  Mi: 2 ** 20,
  Gi: 2 ** 30,
  Ti: 2 ** 40,
  k: 1e3,
  M: 1e6,
  G: 1e9,
  T: 1e12,
};

/** Kubernetes quantities for byte sizes (512, 64Ki, 50Mi, 1G) to bytes; throws on anything else. */
export function parseBytes(text: string): number {
  const match = BYTES.exec(text);
  if (!match)
    throw new Error(
      `expected a size such as 512, 64Ki, 50Mi or 1Gi; found ${JSON.stringify(text)}`,
    );
  return Number(match[1]) * BYTE_UNITS[match[2] ?? '']!;
}
