import type { PeerCertificate, Server, TLSSocket } from 'node:tls';
import {
  certificateProblemOf,
  PeerCertificateError,
  spiffeIdOf,
} from '../../certs/peer-identity.ts';
import { isRevokedCertificate } from '../../common/revocation.ts';

/** The peer proved a valid mesh identity, but not the one expected for this destination. */
export class PeerIdentityMismatchError extends PeerCertificateError {
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
export class PeerRevokedError extends PeerCertificateError {
  constructor(spiffeId: string) {
    super(
      'POSTERN_PEER_REVOKED',
      `the destination presented a certificate of ${spiffeId} issued before the identity was revoked`,
    );
  }
}

/**
 * A tls `checkServerIdentity` that accepts exactly one SPIFFE ID, in a
 * workload certificate fit for a TLS server (certificateProblemOf) and not
 * revoked (`revokedUpTo` gives an identity's revocation, if any, from the
 * current snapshot). Mesh certificates name workloads, not hosts, so the
 * hostname check is replaced, not added to (the chain is still verified
 * against the trust bundle). Runs once per connection.
 */
export function expectSpiffeId(
  expected: string,
  revokedUpTo: (spiffeId: string) => number | undefined = () => undefined,
): (host: string, cert: PeerCertificate) => Error | undefined {
  return (_host, cert) => {
    if (!cert.raw) return new PeerIdentityMismatchError(expected, undefined);
    const unfit = certificateProblemOf(cert.raw, 'server');
    if (unfit) return unfit;
    const presented = spiffeIdOf(cert.raw);
    if (presented !== expected) return new PeerIdentityMismatchError(expected, presented);
    if (isRevokedCertificate(Date.parse(cert.valid_from), revokedUpTo(expected)))
      return new PeerRevokedError(expected);
    return undefined;
  };
}

/**
 * Ends an inbound connection whose client certificate passed Node's checks
 * but not ours (certificateProblemOf), reported as Node reports the
 * handshakes it refuses itself: through the server's 'tlsClientError'
 * listeners, which count and log it, so that one place sees every refusal.
 * Emitted before the socket is destroyed, while its address is still known;
 * it runs from 'secureConnection', before the connection's first request is
 * read.
 */
export function refuseHandshake(server: Server, socket: TLSSocket, error: Error): void {
  server.emit('tlsClientError', error, socket);
  socket.destroy();
}
