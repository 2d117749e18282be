import type { IncomingMessage } from 'node:http';
import type { Filter } from './filter.ts';

/**
 * Settles the client address policy (sourceIPs) and source-ip limits judge
 * by, where it is not simply the socket's: at the gateway behind a trusted
 * proxy it is the client that proxy names (listeners/gateway.ts).
 */
export function clientAddress(addressOf: (req: IncomingMessage) => string | undefined): Filter {
  return {
    name: 'client-address',
    onRequest(exchange) {
      exchange.clientAddress = addressOf(exchange.req);
      return undefined;
    },
  };
}
