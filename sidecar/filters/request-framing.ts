import type { IncomingMessage } from 'node:http';
import { isAuthority } from '../../common/address.ts';
import type { LocalReply } from '../http/local-reply.ts';
import type { Filter } from './filter.ts';

/** Envoy's default (max_headers_count): a request with more header lines is refused, not truncated. */
export const DEFAULT_MAX_HEADERS = 100;

const reply = (status: number, code: string, message: string): LocalReply =>
  Object.freeze({ status, code, message, close: true });

const NO_HOST = reply(400, 'POSTERN_BAD_HOST', 'an HTTP/1.1 request must carry one Host header');
const TWO_HOSTS = reply(
  400,
  'POSTERN_BAD_HOST',
  'the request carries more than one Host header; which host it is for is ambiguous',
);
const CHUNKED_1_0 = reply(
  400,
  'POSTERN_BAD_FRAMING',
  'an HTTP/1.0 request may not carry Transfer-Encoding (RFC 9112, 6.1: its framing is faulty)',
);
const UNKNOWN_CODING = reply(
  501,
  'POSTERN_UNSUPPORTED_TRANSFER_CODING',
  'the only transfer coding taken is chunked (RFC 9112, 6.1: 501 for one not understood)',
);
const BAD_HOST = reply(
  400,
  'POSTERN_BAD_HOST',
  'the Host header is not a host name or address with an optional port',
);

/**
 * First in every chain: what Node's parser lets through but two parsers
 * could still read two ways. Every refusal closes the connection (after a
 * request the sidecar would not parse as its sender meant, what follows on
 * the stream cannot be trusted either).
 *
 * - More header lines than `maxHeaders`: 431. Node would keep the first
 *   2,000 and silently drop the rest (server.maxHeadersCount), so a header
 *   the app relies on could vanish after policy judged the request.
 * - Transfer-Encoding on HTTP/1.0: 400 (RFC 9112, 6.1); any coding but
 *   chunked on HTTP/1.1: 501 (as Envoy).
 * - Host missing on HTTP/1.1, repeated, or not one authority (`a, b`, a
 *   space, a path): 400. Node keeps the first of two Hosts while the app
 *   may read the last; routing and policy must judge the host the app sees.
 *
 * Per request: one pass over the raw header names, one regular-expression
 * test of the Host value; nothing allocated.
 */
export function requestFraming(maxHeaders: number): Filter {
  const tooMany = reply(
    431,
    'POSTERN_TOO_MANY_HEADERS',
    `the request has more than ${maxHeaders} header lines`,
  );
  return {
    name: 'request-framing',
    onRequest(exchange) {
      const req = exchange.req;
      if (req.rawHeaders.length > 2 * maxHeaders) return tooMany;
      // HTTP/1.0 has no chunked coding: a peer that read this one by
      // Content-Length or to the close would see another request than Node.
      const coding = req.headers['transfer-encoding'];
      if (coding !== undefined) {
        if (req.httpVersionMinor === 0) return CHUNKED_1_0;
        // gzip, chunked: Node undoes the chunking and leaves the gzip, and
        // the request would go on with a length and no coding (a body
        // the app reads as other bytes than were sent).
        if (coding.length !== 7 || coding.toLowerCase() !== 'chunked') return UNKNOWN_CODING;
      }
      return hostProblem(req);
    },
  };
}

function hostProblem(req: IncomingMessage): LocalReply | undefined {
  const raw = req.rawHeaders;
  let host: string | undefined;
  for (let i = 0; i < raw.length; i += 2) {
    const name = raw[i]!;
    if (name.length !== 4 || name.toLowerCase() !== 'host') continue;
    if (host !== undefined) return TWO_HOSTS;
    host = raw[i + 1]!;
  }
  if (host === undefined) return req.httpVersionMinor === 0 ? undefined : NO_HOST;
  return isAuthority(host) ? undefined : BAD_HOST;
}
