import type { PeerCertificate } from 'node:tls';
import { spiffeIdOf } from '../../certs/peer-identity.ts';
import { PosternError } from '../../common/errors.ts';
import { isRevokedCertificate } from '../../common/revocation.ts';

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

/** The peer proved the expected identity with a certificate issued before that identity was revoked. */
export class PeerRevokedError extends PosternError {
  constructor(spiffeId: string) {
    super(
      'POSTERN_PEER_REVOKED',
      `the destination presented a certificate of ${spiffeId} issued before the identity was revoked`,
    );
  }
}

/**
 * A tls `checkServerIdentity` that accepts exactly one SPIFFE ID, in a
 * certificate not revoked (`revokedUpTo` gives an identity's revocation, if
 * any, from the current snapshot). Mesh certificates name workloads, not
 * hosts, so the hostname check is replaced, not added to (the chain is still
 * verified against the trust bundle). Runs once per connection.
 */
export function expectSpiffeId(
  expected: string,
  revokedUpTo: (spiffeId: string) => number | undefined = () => undefined,
): (host: string, cert: PeerCertificate) => Error | undefined {
  return (_host, cert) => {
    const presented = cert.raw ? spiffeIdOf(cert.raw) : undefined;
    if (presented !== expected) return new PeerIdentityMismatchError(expected, presented);
    if (isRevokedCertificate(Date.parse(cert.valid_from), revokedUpTo(expected)))
      return new PeerRevokedError(expected);
    return undefined;
  };
}
