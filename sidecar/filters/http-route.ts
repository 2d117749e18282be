import type { IncomingMessage } from 'node:http';
import { preflightHeaders, responseCorsHeaders } from '../gateway/cors.ts';
import type { CompiledMatch, RouteRequest } from '../gateway/http-route-table.ts';
import { redirect } from '../gateway/route-filters.ts';
import type { LocalReply } from '../http/local-reply.ts';
import type { SnapshotState } from '../policy/snapshot-state.ts';
import type { Exchange, Filter } from './filter.ts';

const NOT_READY: LocalReply = {
  status: 503,
  code: 'POSTERN_NOT_READY',
  message: 'the gateway has no policy snapshot yet',
};

/** The Host header's name part, lower-cased: no port, no trailing dot. */
export function hostName(req: IncomingMessage): string {
  const authority = req.headers.host ?? '';
  const end = authority.startsWith('[')
    ? authority.indexOf(']') + 1
    : authority.lastIndexOf(':') === -1
      ? authority.length
      : authority.lastIndexOf(':');
  const host = authority.slice(0, end).toLowerCase();
  return host.endsWith('.') ? host.slice(0, -1) : host;
}

/** What the route table reads of one request; query parameters parsed only if a match asks. */
class RequestView implements RouteRequest {
  readonly host: string;
  readonly method: string;
  readonly path: string;
  readonly #exchange: Exchange;
  #query: URLSearchParams | undefined;

  constructor(exchange: Exchange) {
    this.#exchange = exchange;
    this.host = hostName(exchange.req);
    this.method = exchange.req.method ?? '';
    this.path = exchange.target!.path;
  }

  header(lowerName: string): string | undefined {
    const value = this.#exchange.req.headers[lowerName];
    return typeof value === 'string' ? value : undefined;
  }

  query(name: string): string | undefined {
    this.#query ??= new URLSearchParams(this.#exchange.target!.search);
    return this.#query.get(name) ?? undefined;
  }
}

function notFound(view: RequestView): LocalReply {
  return {
    status: 404,
    code: 'POSTERN_NO_ROUTE',
    message: 'no HTTPRoute of this gateway matches the request',
    details: { host: view.host, method: view.method, path: view.path },
  };
}

/** A CORS preflight: OPTIONS with Origin and Access-Control-Request-Method (Fetch standard). */
function preflight(exchange: Exchange, match: CompiledMatch): LocalReply | undefined {
  const req = exchange.req;
  const origin = req.headers.origin;
  const method = req.headers['access-control-request-method'];
  if (req.method !== 'OPTIONS' || !origin || typeof method !== 'string') return undefined;
  return {
    status: 204,
    code: 'POSTERN_CORS_PREFLIGHT',
    message: '',
    headers: preflightHeaders(
      match.cors!,
      origin,
      method,
      req.headers['access-control-request-headers'],
    ),
  };
}

/**
 * The gateway's routing step: the HTTPRoute rule that takes the request
 * (Gateway API precedence, http-route-table.ts), or 404 with a JSON body;
 * a rule that redirects answers here, and so does a CORS preflight (a
 * browser sends it without credentials, so nothing after this could admit
 * it). An allowed origin's actual request gets its CORS response headers.
 */
export function routeHttp(state: SnapshotState): Filter {
  return {
    name: 'http-route',
    onRequest(exchange) {
      const applied = state.current;
      if (!applied) return NOT_READY;
      // request-framing refused a Host that is not one (`evil.com/#.example.com`
      // would match wildcards and land in redirects).
      const view = new RequestView(exchange);
      const match = applied.httpRoutes?.match(view);
      if (!match) return notFound(view);
      exchange.httpRoute = match;
      if (match.cors) {
        const answer = preflight(exchange, match);
        if (answer) return answer;
        const origin = exchange.req.headers.origin;
        const cors = origin ? responseCorsHeaders(match.cors, origin) : undefined;
        if (cors) exchange.responseHeaders = [...(exchange.responseHeaders ?? []), ...cors];
      }
      const moved = redirect(match, {
        scheme: 'https',
        host: view.host,
        port: exchange.req.socket.localPort ?? 443,
        path: view.path,
        search: exchange.target!.search,
      });
      if (moved) {
        return {
          status: moved.status,
          code: 'POSTERN_REDIRECT',
          message: `moved to ${moved.location}`,
          headers: { location: moved.location },
        };
      }
      return undefined;
    },
  };
}
