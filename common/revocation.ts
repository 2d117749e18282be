import type { Revocation } from './wire.ts';

/**
 * One rule, applied by the control plane (renewals, watches) and by every
 * sidecar (inbound callers, outbound destinations): a certificate of a
 * revoked identity is refused when its notBefore is at or before the
 * revocation's `notBeforeUpTo`. X.509 times are whole seconds, rounded down,
 * so every certificate issued up to that instant is caught.
 */
export function isRevokedCertificate(
  notBeforeMs: number,
  notBeforeUpToMs: number | undefined,
): boolean {
  return notBeforeUpToMs !== undefined && notBeforeMs <= notBeforeUpToMs;
}

/**
 * The revocation for an identity revoked at `revokedAtMs`, when the CA
 * back-dates certificates by `backdateMs`: a certificate issued at that
 * instant carries notBefore = revokedAt − backdate.
 */
export function revocationOf(
  spiffeId: string,
  revokedAtMs: number,
  backdateMs: number,
): Revocation {
  return { spiffeId, notBeforeUpTo: new Date(revokedAtMs - backdateMs).toISOString() };
}
