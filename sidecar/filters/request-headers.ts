import type { IncomingMessage } from 'node:http';
import { isHopByHop } from '../../common/header-roles.ts';
import { connectionNamed, type RequestHeaderRules, underscoreVerdict } from '../http/headers.ts';
import type { Filter } from './filter.ts';

/** Removes a header from both of Node's views of the request, so every later reader agrees. */
function removeHeader(req: IncomingMessage, lowerName: string): void {
  delete req.headers[lowerName];
  delete req.headersDistinct[lowerName];
}

/**
 * First in both chains: takes out of `req.headers` what will not reach the
 * other side, so that route matching and authorization judge the request
 * the app receives (sidecar/http/headers.ts has the rules; forwarding
 * applies the same ones to the raw headers).
 *
 * - Headers the Connection header names are hop-by-hop: removed. Connection
 *   naming Host or Content-Length is refused (400, connection closed): the
 *   sidecar needs both, and a peer that obeyed would frame or route the
 *   request differently. Hop-by-hop names (Transfer-Encoding, Upgrade) stay
 *   in `req.headers`: the sidecar reads them and never forwards them anyway.
 * - Names with underscores: an owned name's twin is removed; others follow
 *   `rules.underscores` (reject: 400 POSTERN_UNDERSCORE_HEADER, connection
 *   closed). Those kept are listed on the exchange for authorization.
 *
 * Per request: one scan of the raw header names for `_`; Connection is
 * parsed only when it says more than close, keep-alive or upgrade.
 */
export function requestHeaders(rules: RequestHeaderRules): Filter {
  return {
    name: 'request-headers',
    onRequest(exchange) {
      const req = exchange.req;
      const named = connectionNamed(req.headers.connection);
      if (named) {
        for (const name of named) {
          if (name === 'host' || name === 'content-length') {
            return {
              status: 400,
              code: 'POSTERN_BAD_CONNECTION_HEADER',
              message: `Connection may not name ${name}: it is needed end to end`,
              close: true,
            };
          }
          if (!isHopByHop(name)) removeHeader(req, name);
        }
      }
      const raw = req.rawHeaders;
      for (let i = 0; i < raw.length; i += 2) {
        const name = raw[i]!;
        if (!name.includes('_')) continue;
        const lower = name.toLowerCase();
        if (named?.has(lower)) continue;
        const verdict = underscoreVerdict(lower, rules.underscores);
        if (verdict === 'reject') {
          return {
            status: 400,
            code: 'POSTERN_UNDERSCORE_HEADER',
            message: `the header name ${name} has an underscore, which servers that read _ as - could take for another header; this sidecar refuses such names`,
            close: true,
          };
        }
        if (verdict === 'drop') removeHeader(req, lower);
        else if (exchange.underscoreHeaders) exchange.underscoreHeaders.push(lower);
        else exchange.underscoreHeaders = [lower];
      }
      return undefined;
    },
  };
}
