import type { IncomingMessage, Server, ServerResponse } from 'node:http';
import type { Socket } from 'node:net';
import type { Duplex } from 'node:stream';
import type { ConnectionLimits } from '../../common/connection-limits.ts';
import { PosternError } from '../../common/errors.ts';
import { isDraining } from '../../common/listen.ts';
import type { Logger } from '../../common/log.ts';
import { LogThrottle } from '../../common/log-throttle.ts';
import type { Direction } from '../data-plane.ts';
import { type Exchange, type Filter, runFilters } from '../filters/filter.ts';
import { upstreamFailure } from '../http/forward.ts';
import { type LocalReply, sendLocalReply, writeLocalReplyToSocket } from '../http/local-reply.ts';
import { type ExchangeObserver, requestBodyBytes } from '../telemetry/exchange-observer.ts';
import type { SidecarMetrics } from '../telemetry/metrics.ts';

const INTERNAL_ERROR = {
  status: 500,
  code: 'POSTERN_INTERNAL',
  message: 'the sidecar failed to handle this request',
  close: true,
} as const;
// CONNECT would open an opaque tunnel the sidecar can neither route nor
// authorize by route; mesh calls are plain HTTP (outbound) or mTLS (inbound).
// Node destroys the socket of a CONNECT nobody listens for, unanswered.
const CONNECT_REFUSED = {
  status: 405,
  code: 'POSTERN_CONNECT_NOT_SUPPORTED',
  message: 'CONNECT tunnels are not supported; send plain HTTP and the sidecar originates mTLS',
} as const;
const UNSUPPORTED_UPGRADE = {
  status: 400,
  code: 'POSTERN_UPGRADE_NOT_SUPPORTED',
  message: 'only WebSocket upgrades are tunnelled',
} as const;

export interface ExchangeHandlers {
  readonly direction: Direction;
  readonly logger: Logger;
  readonly chain: readonly Filter[];
  readonly metrics: SidecarMetrics;
  /** Sends a request the chain let through upstream; resolves with the status the client got. */
  forward(exchange: Exchange, res: ServerResponse): Promise<number>;
  /** Tunnels an Upgrade request the chain let through. */
  tunnel(exchange: Exchange, socket: Duplex, head: Buffer): void;
  /** Told of every request as it arrives and once it is answered (usage records, access log, tracing). */
  readonly observers: readonly ExchangeObserver[];
  /**
   * The listener's limits: header lines a request may carry (the
   * request-framing filter refuses more), how long a tunnel may sit idle.
   */
  readonly limits: Pick<ConnectionLimits, 'maxHeaders' | 'streamIdleTimeoutMs'>;
}

/**
 * Requests parsed behind the one being handled that may wait on one
 * connection. No client pipelines this deep (browsers and curl do not
 * pipeline at all); past it the connection is cut, none of those waiting
 * having reached the app, rather than hold thousands of parsed requests.
 */
const MAX_QUEUED_PIPELINED = 32;

/** Per-connection state, kept on the socket (no map lookup per request). */
const BUSY = Symbol('postern.busy');
const QUEUED = Symbol('postern.queued');
const CLOSING = Symbol('postern.closing');
interface PipelineState {
  /** A request of this connection is being handled. */
  [BUSY]?: boolean;
  /** Requests and their responses, alternating. */
  [QUEUED]?: (IncomingMessage | ServerResponse)[];
  /**
   * A local reply is closing the connection: a request pipelined behind
   * the refused one was parsed from a stream that can no longer be
   * trusted, and is never acted on (Node hands it over all the same).
   */
  [CLOSING]?: boolean;
}

/** Why a tunnel was cut: nothing moved through it for the listener's stream idle timeout. */
class TunnelIdleError extends PosternError {
  constructor() {
    super('POSTERN_TUNNEL_IDLE', 'nothing moved through the tunnel for the stream idle timeout');
  }
}

/** How long a connection refused for a malformed request may take to read its answer before it is cut. */
const REFUSAL_LINGER_MS = 2_000;

/**
 * What the parser refused before any request existed: Node's errors by
 * code, answered as the sidecar answers everything (JSON, a stable code).
 */
function parseFailure(error: NodeJS.ErrnoException): LocalReply {
  if (error.code === 'HPE_HEADER_OVERFLOW')
    return {
      status: 431,
      code: 'POSTERN_HEADERS_TOO_LARGE',
      message: 'the request head is larger than this listener takes',
    };
  if (error.code === 'ERR_HTTP_REQUEST_TIMEOUT')
    return {
      status: 408,
      code: 'POSTERN_REQUEST_TIMEOUT',
      message: 'the request did not arrive in time',
    };
  return {
    status: 400,
    code: 'POSTERN_MALFORMED_REQUEST',
    message: `the request is not valid HTTP/1.1 (${error.code ?? 'parse error'})`,
  };
}

/**
 * Answers a request the parser refused, then closes: Node's own handler
 * writes its answer and destroys the socket at once, which over TLS loses
 * the answer; this one ends the stream and cuts it only if the client does
 * not take it within REFUSAL_LINGER_MS.
 */
function refuseUnparsable(error: NodeJS.ErrnoException, socket: Duplex): void {
  const inFlight = (
    socket as Duplex & { _httpMessage?: { headersSent?: boolean; shouldKeepAlive: boolean } }
  )._httpMessage;
  // Only the HTTP parser's refusals get an HTTP answer. An https server
  // hands its TLS failures (a handshake that timed out or was refused) here
  // too: there is no HTTP, or even TLS, session to answer on, and waiting
  // for the client to read an answer would hold the socket past the
  // handshake timeout.
  const code = error.code ?? '';
  if (!(code.startsWith('HPE_') || code === 'ERR_HTTP_REQUEST_TIMEOUT') || !socket.writable) {
    socket.destroy();
    return;
  }
  if (inFlight && error.code === 'HPE_CLOSED_CONNECTION') {
    // Bytes after a request that ended the connection (HTTP/1.0, or
    // Connection: close): that request's answer goes out, then the close.
    inFlight.shouldKeepAlive = false;
    return;
  }
  if (inFlight?.headersSent) {
    socket.destroy();
    return;
  }
  refuseOnSocket(socket, parseFailure(error));
}

/**
 * Answers on a socket no HTTP response owns (a parser refusal, a CONNECT,
 * an Upgrade refused), ends it, and cuts it if the client has not closed
 * within REFUSAL_LINGER_MS: off the server's own timeouts (an upgraded
 * socket is), a client that never closes would hold the slot for ever.
 */
function refuseOnSocket(socket: Duplex, reply: LocalReply): void {
  writeLocalReplyToSocket(socket, reply);
  setTimeout(() => socket.destroy(), REFUSAL_LINGER_MS).unref();
}

/**
 * The glue both listeners share: run the direction's filter chain on each
 * request (and on each Upgrade request), answer locally when a filter
 * replies, otherwise forward or tunnel; record metrics. Upgraded sockets
 * close with the server (common/listen.ts tracks every accepted socket).
 */
/**
 * An exchange with every field the chain may fill in already present, so
 * that filling them in does not grow the object (a hidden-class transition
 * and a property store allocation per request otherwise).
 */
function newExchange(req: IncomingMessage): Exchange {
  return {
    req,
    startedAt: performance.now(),
    underscoreHeaders: undefined,
    target: undefined,
    httpRoute: undefined,
    clientAddress: undefined,
    principal: undefined,
    consumer: undefined,
    requestLimit: undefined,
    claims: undefined,
    dropHeaders: undefined,
    addHeaders: undefined,
    certificateThumbprint: undefined,
    decision: undefined,
    responseHeaders: undefined,
    responseBytes: undefined,
    unknownDestination: undefined,
    service: undefined,
    destination: undefined,
    rateLimit: undefined,
    responseLimit: undefined,
    exfiltration: undefined,
    span: undefined,
    traceHeaders: undefined,
  };
}

export function serveExchanges(server: Server, handlers: ExchangeHandlers): void {
  const { direction, chain, metrics, observers, logger } = handlers;
  // Node keeps this many header lines and silently drops the rest; one over
  // the limit is all the request-framing filter needs to see to refuse it.
  server.maxHeadersCount = handlers.limits.maxHeaders + 1;
  const tunnelIdleMs = handlers.limits.streamIdleTimeoutMs;
  server.on('clientError', refuseUnparsable);
  server.on('connect', (_req: IncomingMessage, socket: Socket & PipelineState) => {
    socket.on('error', () => socket.destroy());
    // Behind a request still being answered, any answer would jump its turn.
    if (socket[BUSY] === true) socket.destroy();
    else refuseOnSocket(socket, CONNECT_REFUSED);
  });
  const cutPipelines = new LogThrottle();
  const beginning = observers.filter((observer) => observer.begin);
  const begin = (exchange: Exchange) => {
    for (let i = 0; i < beginning.length; i++) beginning[i]!.begin!(exchange);
  };
  const end = (exchange: Exchange, status: number) => {
    try {
      for (let i = 0; i < observers.length; i++) observers[i]!.end(exchange, status);
    } catch (error) {
      logger.error('recording a request failed', { direction, error });
    }
  };

  const handle = async (
    socket: Socket & PipelineState,
    req: IncomingMessage,
    res: ServerResponse,
  ): Promise<void> => {
    // Shutting down: answered, then the connection closes (the client opens
    // its next one elsewhere, not on a socket about to go).
    if (isDraining(server)) res.shouldKeepAlive = false;
    const exchange = newExchange(req);
    let status: number;
    try {
      begin(exchange);
      const result = runFilters(chain, exchange);
      const reply = result instanceof Promise ? await result : result;
      if (reply) {
        if (reply.close) socket[CLOSING] = true;
        sendLocalReply(res, reply, exchange.responseHeaders);
        status = reply.status;
      } else {
        status = await handlers.forward(exchange, res);
      }
    } catch (error) {
      // A bug must cost one request, never the process and every other request.
      status = 500;
      logger.error('request handling failed', { direction, error });
      socket[CLOSING] = true;
      if (!res.headersSent) sendLocalReply(res, INTERNAL_ERROR);
      else res.destroy();
    }
    try {
      const decided = exchange.decision;
      metrics.requests.inc(
        direction,
        decided ? (decided.allowed ? 'allow' : 'deny') : 'none',
        status,
      );
      const policy = decided?.policy ?? 'none';
      const route = decided?.route ?? 'none';
      metrics.duration.observe(
        (performance.now() - exchange.startedAt) / 1000,
        direction,
        policy,
        route,
      );
      metrics.requestSize.observe(requestBodyBytes(exchange), direction, policy, route);
      metrics.responseSize.observe(exchange.responseBytes ?? 0, direction, policy, route);
      end(exchange, status);
    } finally {
      next(socket, res);
    }
  };

  // One request per connection at a time, as Envoy's HTTP/1 codec does:
  // Node hands over every request it parses from what it read, pipelined
  // ones included, and forwarding them all at once let one connection
  // queue thousands of requests on the app's pool (everyone else waiting
  // behind them). A request that arrives while another is handled waits
  // its turn. (The connection is not paused meanwhile: a request head left
  // half-read in the socket would run into the headers timeout.)
  const serve = (req: IncomingMessage, res: ServerResponse): void => {
    const socket = req.socket as Socket & PipelineState;
    if (socket[CLOSING] === true) return;
    if (socket[BUSY] === true) {
      queuePipelined(socket, req, res);
      return;
    }
    socket[BUSY] = true;
    void handle(socket, req, res);
  };
  const queuePipelined = (
    socket: Socket & PipelineState,
    req: IncomingMessage,
    res: ServerResponse,
  ): void => {
    let queue = socket[QUEUED];
    if (queue === undefined) {
      queue = [];
      socket[QUEUED] = queue;
    }
    if (queue.length < 2 * MAX_QUEUED_PIPELINED) {
      queue.push(req, res);
      return;
    }
    socket[CLOSING] = true;
    queue.length = 0;
    socket.destroy();
    const cut = cutPipelines.due();
    if (cut !== undefined)
      logger.warn('connection cut: too many pipelined requests', {
        direction,
        maxQueued: MAX_QUEUED_PIPELINED,
        remote: socket.remoteAddress,
        cutSinceLastLine: cut,
      });
  };
  /** The request before has been answered (`previous`): the next one waiting, if it may go. */
  const next = (socket: Socket & PipelineState, previous: ServerResponse): void => {
    const queue = socket[QUEUED];
    if (queue === undefined || queue.length === 0) {
      socket[BUSY] = false;
      return;
    }
    // The answer just given ends the connection (a refusal, draining,
    // Connection: close), or the client went: what waits behind it never
    // reaches the app; its client sees the close and may send it again.
    if (
      socket.destroyed ||
      socket[CLOSING] === true ||
      !previous.shouldKeepAlive ||
      isDraining(server)
    ) {
      queue.length = 0;
      socket[BUSY] = false;
      return;
    }
    const req = queue.shift() as IncomingMessage;
    const res = queue.shift() as ServerResponse;
    void handle(socket, req, res);
  };
  server.on('request', serve);

  server.on(
    'upgrade',
    async (req: IncomingMessage, socket: Socket & PipelineState, head: Buffer) => {
      // Node drops its own error listener from an upgraded socket; without one,
      // a client reset before the tunnel is up would crash the process.
      socket.on('error', () => socket.destroy());
      // Pipelined behind a request still being answered, or one refused with
      // a close: a tunnel's 101 (or its refusal) would jump the earlier
      // answer's turn, or act on what follows a refusal. Cut, never acted on.
      if (socket[BUSY] === true || socket[CLOSING] === true) {
        socket.destroy();
        return;
      }
      // WebSocket only (Envoy's default): any other protocol would turn one
      // authorized request into an opaque stream policy never sees again.
      if (req.headers.upgrade?.toLowerCase() !== 'websocket') {
        refuseOnSocket(socket, UNSUPPORTED_UPGRADE);
        return;
      }
      const exchange = newExchange(req);
      // An upgrade is recorded as answered once its tunnel starts (101) or it is refused.
      let status = 101;
      try {
        begin(exchange);
        const result = runFilters(chain, exchange);
        const reply = result instanceof Promise ? await result : result;
        if (reply) {
          refuseOnSocket(socket, reply);
          status = reply.status;
        } else {
          req.url = exchange.target!.path + exchange.target!.search;
          handlers.tunnel(exchange, socket, head);
          // http-proxy turns the socket's timeout off; a tunnel nobody uses
          // would hold its connection slot and the upstream's for ever. Cut
          // with an error, which http-proxy answers by ending the upstream side.
          socket.setTimeout(tunnelIdleMs, () => socket.destroy(new TunnelIdleError()));
        }
      } catch (error) {
        logger.error('upgrade handling failed', { direction, error });
        refuseOnSocket(socket, INTERNAL_ERROR);
        status = INTERNAL_ERROR.status;
      }
      end(exchange, status);
    },
  );
}

/**
 * An Upgrade tunnel's upstream failed. If the client has been sent nothing
 * yet, it gets an HTTP error saying why; once the 101 went out the stream is
 * WebSocket frames, and all that can be done is to close it.
 */
export function failTunnel(
  socket: Duplex,
  error: unknown,
  logger: Logger,
  direction: string,
): void {
  const failure = upstreamFailure(error);
  logger.warn('upgrade tunnel failed', { direction, code: failure.code, reason: failure.message });
  if ((socket as Duplex & { bytesWritten?: number }).bytesWritten === 0 && socket.writable) {
    refuseOnSocket(socket, failure);
  } else socket.destroy();
}
