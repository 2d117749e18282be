import type { Socket } from 'node:net';
import { type Consumer, consumerOfKey } from '../gateway/consumers.ts';
import type { LocalReply } from '../http/local-reply.ts';
import type { Filter } from './filter.ts';

/** The principal of an API-key consumer in policy, limits and telemetry. */
export const consumerPrincipal = (name: string) => `consumer:${name}`;
/** The principal of a partner's client certificate (verified against --client-ca): its subject's CN. */
export const certificatePrincipal = (commonName: string) => `cert:${commonName}`;

const UNKNOWN_KEY: LocalReply = {
  status: 401,
  code: 'POSTERN_API_KEY_INVALID',
  message: 'the API key is not one this gateway knows',
  headers: { 'www-authenticate': 'ApiKey' },
};
const REPEATED_KEY: LocalReply = {
  status: 400,
  code: 'POSTERN_REPEATED_HEADER',
  message: 'the API key header appears more than once',
  close: true,
};

/**
 * The outside client's identity at the gateway, before JWT: an API key in
 * the configured header names a consumer (principal `consumer:<name>`); a
 * key that names none is refused (401), never taken as no key. Without a
 * key, a client certificate verified against --client-ca names the caller
 * (`cert:<CN>`). Neither: no principal, and policy decides (a JWT rule, say).
 */
export function authenticateClient(deps: {
  /** Lower-case header name the key comes in (default x-api-key). */
  header: string;
  consumers: () => readonly Consumer[];
  /** The verified client certificate's CN on this connection, if any. */
  certificateOf: (socket: Socket) => string | undefined;
}): Filter {
  const { header, consumers, certificateOf } = deps;
  return {
    name: 'authenticate-client',
    onRequest(exchange) {
      const key = exchange.req.headersDistinct[header];
      if (key) {
        if (key.length > 1) return REPEATED_KEY;
        const consumer = consumerOfKey(consumers(), key[0]!);
        if (consumer === undefined) return UNKNOWN_KEY;
        exchange.consumer = consumer;
        exchange.principal = consumerPrincipal(consumer);
        return undefined;
      }
      const commonName = certificateOf(exchange.req.socket);
      if (commonName !== undefined) exchange.principal = certificatePrincipal(commonName);
      return undefined;
    },
  };
}
