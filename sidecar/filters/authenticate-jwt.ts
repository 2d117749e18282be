import { decodeJwt } from 'jose';
import type { LocalReply } from '../http/local-reply.ts';
import { MAX_TOKEN_BYTES, type TokenResult } from '../identity/jwt-verifier.ts';
import type { SnapshotState } from '../policy/snapshot-state.ts';
import type { Exchange, Filter, FilterResult } from './filter.ts';

// RFC 6750 section 2.1: "Bearer" then one b64token.
const BEARER = /^Bearer +([A-Za-z0-9\-._~+/]+=*)$/i;

/** A 401 naming the RFC 6750 error; the description is quoted, so its quotes and backslashes go. */
function unauthorized(description: string): LocalReply {
  const quoted = description.replace(/["\\]/g, "'");
  return {
    status: 401,
    code: 'POSTERN_INVALID_TOKEN',
    message: description,
    headers: {
      'www-authenticate': `Bearer realm="postern", error="invalid_token", error_description="${quoted}"`,
    },
  };
}

const TWO_AUTHORIZATIONS: LocalReply = Object.freeze({
  status: 400,
  code: 'POSTERN_DUPLICATE_AUTHORIZATION',
  message: 'the request has more than one Authorization header',
  close: true,
});

function authorizationHeaders(raw: readonly string[]): number {
  let count = 0;
  for (let i = 0; i < raw.length; i += 2) if (raw[i]!.toLowerCase() === 'authorization') count++;
  return count;
}

function settle(exchange: Exchange, result: TokenResult): FilterResult {
  if (result.ok) {
    exchange.claims = result.claims;
    return undefined;
  }
  if (result.error === 'temporarily_unavailable') {
    // No key was ever fetched: nothing could verify any token, the fault is not the caller's.
    return { status: 503, code: 'POSTERN_JWKS_UNAVAILABLE', message: result.description };
  }
  return unauthorized(result.description);
}

/**
 * Verifies the request's bearer token against the JWT providers of the
 * policies in force, and puts its claims on the exchange for authorization.
 * A token present must be valid (401 otherwise, whatever the route); a
 * request without one carries no claims, and authorization decides whether
 * the route needed them. Other Authorization schemes are the app's business
 * and pass untouched. Answers synchronously for a token verified before;
 * waits only for a new token's signature check or a key fetch.
 */
export function authenticateJwt(state: SnapshotState): Filter {
  return {
    name: 'authenticate-jwt',
    onRequest(exchange) {
      const verifiers = state.current?.jwt;
      if (!verifiers?.size) return undefined;
      const header = exchange.req.headers.authorization;
      if (header === undefined || !/^bearer /i.test(header)) return undefined;
      // Node keeps the first of two Authorization headers; the app may read the
      // other. The token verified must be the only one the app can see.
      if (authorizationHeaders(exchange.req.rawHeaders) > 1) return TWO_AUTHORIZATIONS;
      // Refused before any parsing: a token this long is an attack or a mistake.
      if (header.length > MAX_TOKEN_BYTES + 16) {
        return unauthorized(`the token is longer than ${MAX_TOKEN_BYTES} bytes`);
      }
      const token = BEARER.exec(header)?.[1];
      if (!token) return unauthorized('the Authorization header is not one Bearer token');
      // A token verified before costs one lookup: no decoding to find its provider.
      for (const verifier of verifiers.values()) {
        const cached = verifier.cached(token);
        if (cached) return settle(exchange, cached);
      }
      let issuer: unknown;
      try {
        issuer = decodeJwt(token).iss;
      } catch {
        return unauthorized('the bearer token is not a JWT');
      }
      const verifier = typeof issuer === 'string' ? verifiers.get(issuer) : undefined;
      if (!verifier) {
        return unauthorized(`no policy accepts tokens from the issuer ${JSON.stringify(issuer)}`);
      }
      const result = verifier.verify(token);
      return result instanceof Promise
        ? result.then((settled) => settle(exchange, settled))
        : settle(exchange, result);
    },
  };
}
