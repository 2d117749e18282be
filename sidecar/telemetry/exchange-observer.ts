import type { Exchange } from '../filters/filter.ts';

/**
 * What watches requests go by without taking part in them: usage records,
 * the access log, tracing. A listener calls `begin` as a request arrives
 * (before its filter chain) and `end` once it is answered, locally or by
 * the upstream. Observers run on the request path and must not wait on
 * anything: they record, and send elsewhere later.
 */
export interface ExchangeObserver {
  begin?(exchange: Exchange): void;
  end(exchange: Exchange, status: number): void;
}

/** The request's body bytes as its Content-Length states them (0 when chunked or absent). */
export function requestBodyBytes(exchange: Exchange): number {
  const length = Number(exchange.req.headers['content-length'] ?? 0);
  return Number.isFinite(length) ? length : 0;
}
