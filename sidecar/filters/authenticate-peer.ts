import type { Socket } from 'node:net';
import type { Filter } from './filter.ts';

/**
 * Sets the exchange's principal from the connection's client certificate.
 * The identity was read once, at the handshake (see the inbound listener);
 * this only looks it up.
 */
export function authenticatePeer(identityOf: (socket: Socket) => string | undefined): Filter {
  return {
    name: 'authenticate-peer',
    onRequest(exchange) {
      exchange.principal = identityOf(exchange.req.socket);
      return undefined;
    },
  };
}
