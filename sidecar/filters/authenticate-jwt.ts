import { decodeJwt } from 'jose';
import type { LocalReply } from '../http/local-reply.ts';
import { pushClaimHeaders } from '../identity/claim-headers.ts';
import type { CompiledJwt, JwtIssuer } from '../identity/jwt-providers.ts';
import type { TokenResult } from '../identity/jwt-verifier.ts';
import { cookiesWithout, type FoundToken, findToken } from '../identity/token-sources.ts';
import type { SnapshotState } from '../policy/snapshot-state.ts';
import type { Exchange, Filter, FilterResult } from './filter.ts';

/** An RFC 6750 error; the description is quoted, so its quotes and backslashes go. */
function bearerError(
  status: 400 | 401,
  error: 'invalid_request' | 'invalid_token',
  code: string,
  description: string,
): LocalReply {
  const quoted = description.replace(/["\\]/g, "'");
  return {
    status,
    code,
    message: description,
    headers: {
      'www-authenticate': `Bearer realm="postern", error="${error}", error_description="${quoted}"`,
    },
    // Two tokens, or one header twice, is a request built to confuse: nothing more on this connection.
    ...(status === 400 ? { close: true } : {}),
  };
}

const unauthorized = (description: string) =>
  bearerError(401, 'invalid_token', 'POSTERN_INVALID_TOKEN', description);

/** Puts a verified token's claims on the exchange, with the headers the app receives for it. */
function settle(
  exchange: Exchange,
  issuer: JwtIssuer,
  found: FoundToken,
  result: TokenResult,
): FilterResult {
  if (!result.ok) {
    // No key was ever fetched: nothing could verify any token, the fault is not the caller's.
    if (result.error === 'temporarily_unavailable') {
      return { status: 503, code: 'POSTERN_JWKS_UNAVAILABLE', message: result.description };
    }
    return unauthorized(result.description);
  }
  exchange.claims = result.claims;
  exchange.dropHeaders = issuer.sources.get(found.source);
  if (
    issuer.claimHeaders.length ||
    (found.source.kind === 'cookie' && !issuer.forwardOriginalToken)
  ) {
    const add: string[] = [];
    pushClaimHeaders(add, issuer.claimHeaders, result.claims);
    if (found.source.kind === 'cookie' && !issuer.forwardOriginalToken) {
      const rest = cookiesWithout(exchange.req.headers.cookie!, found.source.name);
      if (rest !== undefined) add.push('cookie', rest);
    }
    exchange.addHeaders = add;
  }
  return undefined;
}

function verify(
  exchange: Exchange,
  jwt: CompiledJwt,
  found: FoundToken,
): FilterResult | Promise<FilterResult> {
  const token = found.token;
  // A token verified before costs one lookup: no decoding to find its provider.
  for (const issuer of jwt.providers.values()) {
    const cached = issuer.verifier.cached(token);
    if (cached) return accepts(issuer, found) ?? settle(exchange, issuer, found, cached);
  }
  let iss: unknown;
  try {
    iss = decodeJwt(token).iss;
  } catch {
    return unauthorized('the token is not a JWT');
  }
  const issuer = typeof iss === 'string' ? jwt.providers.get(iss) : undefined;
  if (!issuer)
    return unauthorized(`no policy accepts tokens from the issuer ${JSON.stringify(iss)}`);
  const refused = accepts(issuer, found);
  if (refused) return refused;
  const result = issuer.verifier.verify(token);
  return result instanceof Promise
    ? result.then((settled) => settle(exchange, issuer, found, settled))
    : settle(exchange, issuer, found, result);
}

/** A token in a place its provider does not read tokens from is refused, as the provider would refuse it. */
function accepts(issuer: JwtIssuer, found: FoundToken): LocalReply | undefined {
  if (issuer.sources.has(found.source)) return undefined;
  return unauthorized(`this issuer's tokens are not accepted in ${found.source.label}`);
}

/**
 * Verifies the request's token against the JWT providers of the policies in
 * force, and puts its claims on the exchange for authorization. A token
 * present must be valid (401 otherwise, whatever the route); two tokens
 * are refused (400, RFC 6750 invalid_request); a request without one
 * carries no claims, and authorization decides whether the route needed
 * them. A header holding another scheme (`Authorization: Basic`) is the
 * app's business and passes untouched.
 *
 * What the app receives: the token only when its provider forwards it
 * (forwardOriginalToken; removed by default, as Istio does), the claim
 * headers of the verified token, and never a client's copy of any claim
 * header. Answers synchronously for a token verified before; waits only for
 * a new token's signature check or a key fetch.
 */
export function authenticateJwt(state: SnapshotState): Filter {
  return {
    name: 'authenticate-jwt',
    onRequest(exchange) {
      const jwt = state.current?.jwt;
      if (!jwt) return undefined;
      if (jwt.claimHeaders.size) exchange.dropHeaders = jwt.claimHeaders;
      const found = findToken(exchange.req, jwt.sources);
      if (found === undefined) return undefined;
      if ('error' in found) {
        return found.error === 'invalid_request'
          ? bearerError(400, 'invalid_request', 'POSTERN_AMBIGUOUS_TOKEN', found.description)
          : unauthorized(found.description);
      }
      return verify(exchange, jwt, found);
    },
  };
}
