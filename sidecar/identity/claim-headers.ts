/**
 * Verified claims as request headers for the app (a provider's
 * outputClaimToHeaders). Strings, numbers and booleans are sent as they
 * are, a list of strings comma-separated; anything else (objects, nulls),
 * and any value with a control or non-ASCII character, is not sent at all:
 * a header the app trusts must never hold a guess, nor break the request.
 */
const HEADER_SAFE = /^[\x20-\x7e]+$/;

export function claimHeaderValue(claim: unknown): string | undefined {
  let value: string;
  if (typeof claim === 'string') value = claim;
  else if (typeof claim === 'number' || typeof claim === 'boolean') value = String(claim);
  else if (Array.isArray(claim) && claim.every((item) => typeof item === 'string')) {
    value = claim.join(',');
  } else return undefined;
  return HEADER_SAFE.test(value) ? value : undefined;
}

/** Appends `header, value` for each output whose claim is there and sendable. */
export function pushClaimHeaders(
  out: string[],
  outputs: readonly (readonly [header: string, claim: string])[],
  claims: Readonly<Record<string, unknown>>,
): void {
  for (const [header, claim] of outputs) {
    const value = claimHeaderValue(claims[claim]);
    if (value !== undefined) out.push(header, value);
  }
}
