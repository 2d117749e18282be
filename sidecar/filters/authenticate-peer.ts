import type { Socket } from 'node:net';
import type { Filter } from './filter.ts';

/**
 * Sets the exchange's principal from the connection's client certificate.
 * The identity was read once, at the handshake (see the inbound listener);
 * this only looks it up. A certificate from the mesh CA that proves no SPIFFE
 * ID (an operator's tool certificate, say) is refused here: with mTLS STRICT
 * every caller must be a principal, and letting an identity-less caller reach
 * policy would let it slip past deny entries written for "*".
 */
export function authenticatePeer(identityOf: (socket: Socket) => string | undefined): Filter {
  return {
    name: 'authenticate-peer',
    onRequest(exchange) {
      exchange.principal = identityOf(exchange.req.socket);
      if (exchange.principal) return undefined;
      return {
        status: 403,
        code: 'POSTERN_NO_IDENTITY',
        message: 'the client certificate proves no SPIFFE ID',
      };
    },
  };
}
