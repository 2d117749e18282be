import type { PeerCertificate } from 'node:tls';
import { spiffeIdOf } from '../../certs/peer-identity.ts';
import { PosternError } from '../../common/errors.ts';

/** The peer proved a valid mesh identity, but not the one expected for this destination. */
export class PeerIdentityMismatchError extends PosternError {
  readonly expected: string;
  readonly presented: string | undefined;
  constructor(expected: string, presented: string | undefined) {
    super(
      'POSTERN_PEER_IDENTITY_MISMATCH',
      `the destination presented ${presented ?? 'no SPIFFE ID'} but ${expected} was expected`,
    );
    this.expected = expected;
    this.presented = presented;
  }
}

/**
 * A tls `checkServerIdentity` that accepts exactly one SPIFFE ID. Mesh
 * certificates name workloads, not hosts, so the hostname check is replaced,
 * not added to (the chain is still verified against the trust bundle).
 */
export function expectSpiffeId(
  expected: string,
): (host: string, cert: PeerCertificate) => Error | undefined {
  return (_host, cert) => {
    const presented = cert.raw ? spiffeIdOf(cert.raw) : undefined;
    return presented === expected ? undefined : new PeerIdentityMismatchError(expected, presented);
  };
}
