import type { LocalReply } from '../http/local-reply.ts';
import type { Exchange, Filter } from './filter.ts';

export const TOO_LARGE: LocalReply = {
  status: 413,
  code: 'POSTERN_BODY_TOO_LARGE',
  message: 'the request body is longer than this route accepts',
  close: true,
};

/**
 * Request body size, where `limitOf` says one holds (at the gateway the
 * HTTPRoute's `postern.dev/max-request-bytes`, else --max-request-bytes;
 * inbound the RoutePolicy route's `maxRequestBytes`). A Content-Length over
 * it is refused here, before anything reads the body; a chunked body is
 * counted as it streams and cut at the limit (forwardRequest's
 * maxRequestBytes), so the upstream never gets more either. The connection
 * closes: the unread body would otherwise be taken for the next request.
 */
export function requestBodyLimit(limitOf: (exchange: Exchange) => number | undefined): Filter {
  return {
    name: 'request-body-limit',
    onRequest(exchange) {
      const limit = limitOf(exchange);
      if (limit === undefined) return undefined;
      exchange.requestLimit = limit;
      const length = exchange.req.headers['content-length'];
      if (length !== undefined && Number(length) > limit) return TOO_LARGE;
      return undefined;
    },
  };
}
