import type { Socket } from 'node:net';
import type { LocalReply } from '../http/local-reply.ts';
import type { SnapshotState } from '../policy/snapshot-state.ts';
import type { SidecarMetrics } from '../telemetry/metrics.ts';
import type { Filter } from './filter.ts';

/** What the handshake proved about a connection's client certificate (read once per connection). */
export interface PeerCredential {
  readonly principal: string | undefined;
  /** The certificate's notBefore, epoch ms: revocations refuse certificates issued before them. */
  readonly notBeforeMs: number;
  /** base64url SHA-256 of the certificate (DER), for certificate-bound tokens; none in plaintext. */
  readonly thumbprint: string | undefined;
  /** A plaintext connection (no TLS at all), served only while mTLS is PERMISSIVE. */
  readonly plaintext: boolean;
}

const MTLS_REQUIRED: LocalReply = Object.freeze({
  status: 400,
  code: 'POSTERN_MTLS_REQUIRED',
  message: 'this port takes mutual TLS only (mtls: STRICT): connect with a mesh certificate',
  close: true,
});

/**
 * Sets the exchange's principal from the connection's client certificate.
 * The identity was read once, at the handshake (see the inbound listener);
 * this only looks it up. A certificate from the mesh CA that proves no SPIFFE
 * ID (an operator's tool certificate, say) is refused here: with mTLS STRICT
 * every caller must be a principal, and letting an identity-less caller reach
 * policy would let it slip past deny entries written for "*". So is a
 * certificate the control plane says was revoked (`token revoke`): it stays
 * cryptographically valid until it expires, so the snapshot names the
 * identities and the issue time up to which their certificates are refused.
 *
 * A plaintext connection (mtls: PERMISSIVE, for migrating callers to the
 * mesh) proves nothing: its requests go on without a principal while the
 * policies in force say PERMISSIVE, and are refused (400, connection
 * closed) otherwise. Either way they are counted.
 */
export function authenticatePeer(
  peerOf: (socket: Socket) => PeerCredential | undefined,
  state: SnapshotState,
  metrics: SidecarMetrics,
): Filter {
  return {
    name: 'authenticate-peer',
    onRequest(exchange) {
      const peer = peerOf(exchange.req.socket);
      if (peer?.plaintext) {
        // Asked per request, not per connection: a policy edit back to STRICT
        // ends plaintext connections opened while it was PERMISSIVE.
        if (state.current?.policy.mtls !== 'PERMISSIVE') {
          metrics.plaintextRequests.inc('refused');
          return MTLS_REQUIRED;
        }
        metrics.plaintextRequests.inc('accepted');
        // No principal: only entries that name none can admit the request.
        return undefined;
      }
      const principal = peer?.principal;
      exchange.principal = principal;
      exchange.certificateThumbprint = peer?.thumbprint;
      if (!principal) {
        return {
          status: 403,
          code: 'POSTERN_NO_IDENTITY',
          message: 'the client certificate proves no SPIFFE ID',
        };
      }
      const revoked = state.current?.revoked;
      // One size check on the common path: revocations are rare.
      if (revoked?.size) {
        const upTo = revoked.get(principal);
        if (upTo !== undefined && peer.notBeforeMs <= upTo) {
          return {
            status: 403,
            code: 'POSTERN_REVOKED',
            message: `the certificate of ${principal} was issued before the identity was revoked`,
            close: true,
          };
        }
      }
      return undefined;
    },
  };
}
