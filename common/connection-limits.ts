import type { Server as HttpServer } from 'node:http';
import type { Server } from 'node:net';
import type { Logger } from './log.ts';
import { LogThrottle } from './log-throttle.ts';

/**
 * What an unauthenticated client may hold open on a listener that faces the
 * network (the sidecar's inbound port, the control-plane API). Node's own
 * defaults let a connection sit in its TLS handshake for 120 s and put no cap
 * on connections, so a few hundred idle sockets cost memory and file
 * descriptors for minutes without one byte of TLS.
 */
export interface ConnectionLimits {
  /** Open connections beyond this are closed on accept, with a log line. */
  readonly maxConnections: number;
  /** A TLS handshake not finished within this is abandoned. */
  readonly handshakeTimeoutMs: number;
  /** Request headers not complete within this get 408 and a closed connection. */
  readonly headersTimeoutMs: number;
  /** A whole request (headers and body) not received within this, likewise (at least headersTimeoutMs). */
  readonly requestTimeoutMs: number;
  /** Header lines one request may carry; more get 431 (Envoy's max_headers_count default). */
  readonly maxHeaders: number;
  /** Bytes one request head may take; more get 431 (Envoy's max_request_headers_kb default: 60 KiB). */
  readonly maxHeaderBytes: number;
  /** A keep-alive connection with no request for this long is closed. */
  readonly idleTimeoutMs: number;
  /**
   * A connection on which nothing moves either way for this long is cut
   * (Envoy's stream_idle_timeout): a body that stops half-way, a client
   * that stops reading the response.
   */
  readonly streamIdleTimeoutMs: number;
}

/** What every HTTP listener takes from its client, whoever that is. */
const REQUEST_HEAD_LIMITS = {
  maxHeaders: 100,
  maxHeaderBytes: 60 * 1024,
  // Node's 5 s: longer than the 4 s the peer sidecars' pools keep an idle
  // connection (upstream-keepalive-timeout), so the client side gives one
  // up first. 60 s held the connections of a load that had passed, and
  // their TLS state: 50 MB more RSS after the bench's saturation run.
  idleTimeoutMs: 5_000,
  streamIdleTimeoutMs: 300_000,
} as const;

/** How long the data plane waits on what it calls (the app, peer sidecars, a gateway's backends). */
export interface UpstreamLimits {
  /** A TCP and TLS connection not up within this: 504 (Envoy's cluster connect_timeout). */
  readonly connectTimeoutMs: number;
  /**
   * Response headers not back within this of the request: 504. Envoy's
   * route timeout is 15 s, which Istio turned off after it cut off too many
   * slow reports; a minute keeps a hung upstream from holding a request
   * for ever without surprising those.
   */
  readonly responseTimeoutMs: number;
  /** A response body with no byte for this long: cut (Envoy's stream_idle_timeout). */
  readonly streamIdleTimeoutMs: number;
  /**
   * A pooled upstream connection idle this long is closed by this side. It
   * must be shorter than the upstream's own keep-alive timeout (ours and
   * Node's default: 5 s), or a request may go out on a connection the
   * upstream is closing.
   */
  readonly keepAliveTimeoutMs: number;
  /**
   * Connections one upstream (the app, one peer sidecar's endpoint) may
   * have open at once; requests beyond wait for one. Envoy's circuit
   * breaker default. Opened on demand, so the cap costs nothing until it
   * is reached; a smaller one (this was 64 and 128) let a few clients that
   * stopped reading their responses hold every connection while everyone
   * else queued behind them.
   */
  readonly maxConnections: number;
}

export const UPSTREAM_LIMITS: UpstreamLimits = Object.freeze({
  connectTimeoutMs: 5_000,
  responseTimeoutMs: 60_000,
  streamIdleTimeoutMs: 300_000,
  keepAliveTimeoutMs: 4_000,
  maxConnections: 1024,
});

/** undici's Pool options that carry them. */
export function upstreamPoolOptions(limits: UpstreamLimits) {
  return {
    connections: limits.maxConnections,
    connectTimeout: limits.connectTimeoutMs,
    headersTimeout: limits.responseTimeoutMs,
    bodyTimeout: limits.streamIdleTimeoutMs,
    keepAliveTimeout: limits.keepAliveTimeoutMs,
    // undici takes an upstream's Keep-Alive: timeout=N hint over its own
    // setting, up to this: capped, ours holds whatever the upstream says.
    keepAliveMaxTimeout: limits.keepAliveTimeoutMs,
  };
}

export const CONTROL_PLANE_LIMITS: ConnectionLimits = Object.freeze({
  maxConnections: 4096,
  handshakeTimeoutMs: 5_000,
  headersTimeoutMs: 10_000,
  // API requests are small (a CSR, an ack); the snapshot watch is a GET
  // whose request ends at once, so this does not cut the stream.
  requestTimeoutMs: 30_000,
  ...REQUEST_HEAD_LIMITS,
});

export const INBOUND_LIMITS: ConnectionLimits = Object.freeze({
  maxConnections: 4096,
  handshakeTimeoutMs: 5_000,
  headersTimeoutMs: 10_000,
  // Node's default: uploads to the app may take minutes.
  requestTimeoutMs: 300_000,
  ...REQUEST_HEAD_LIMITS,
});

/**
 * The outbound listener's: its client is the app beside it (loopback, or
 * redirected by iptables), so no TLS, but the same bounds on what one
 * request head and one connection may hold.
 */
export const OUTBOUND_LIMITS: ConnectionLimits = Object.freeze({ ...INBOUND_LIMITS });

/** The server options that carry these limits (tls.createServer and http(s).createServer both read them). */
export function timeoutOptions(limits: ConnectionLimits) {
  return {
    keepAliveTimeout: limits.idleTimeoutMs,
    maxHeaderSize: limits.maxHeaderBytes,
    // The request-framing filter checks Host itself: Node's own check answers
    // 400 but goes on parsing what was pipelined behind it.
    requireHostHeader: false,
    handshakeTimeout: limits.handshakeTimeoutMs,
    headersTimeout: limits.headersTimeoutMs,
    requestTimeout: limits.requestTimeoutMs,
    // Node checks the two timeouts above on this interval (30 s by default),
    // which would let a slow client keep its socket three times as long.
    connectionsCheckingInterval: Math.min(1_000, limits.headersTimeoutMs),
  };
}

/**
 * Cuts the connections of an HTTP server on which nothing moved either way
 * for `streamIdleTimeoutMs` (with no 'timeout' listener, Node destroys them).
 */
export function cutIdleStreams(server: HttpServer, limits: ConnectionLimits): void {
  server.setTimeout(limits.streamIdleTimeoutMs);
}

/**
 * Caps open connections on `server`. Connections past the cap are closed by
 * Node on accept; the first one logs at once and then at most one line per
 * 10 s says how many were refused since, so a flood cannot flood the log.
 */
export function capConnections(
  server: Server,
  limits: ConnectionLimits,
  logger: Logger,
  listener: string,
  onDrop?: () => void,
): void {
  server.maxConnections = limits.maxConnections;
  const throttle = new LogThrottle();
  server.on('drop', (data?: { remoteAddress?: string }) => {
    onDrop?.();
    const dropped = throttle.due();
    if (dropped === undefined) return;
    logger.warn('connection refused: the connection limit is reached', {
      listener,
      maxConnections: limits.maxConnections,
      refusedSinceLastLine: dropped,
      remote: data?.remoteAddress,
    });
  });
}
