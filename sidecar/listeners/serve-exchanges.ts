import type { IncomingMessage, Server, ServerResponse } from 'node:http';
import type { Duplex } from 'node:stream';
import type { Logger } from '../../common/log.ts';
import type { Direction } from '../data-plane.ts';
import { type Exchange, type Filter, runFilters } from '../filters/filter.ts';
import { upstreamFailure } from '../http/forward.ts';
import { sendLocalReply, writeLocalReplyToSocket } from '../http/local-reply.ts';
import { type ExchangeObserver, requestBodyBytes } from '../telemetry/exchange-observer.ts';
import type { SidecarMetrics } from '../telemetry/metrics.ts';

const INTERNAL_ERROR = {
  status: 500,
  code: 'POSTERN_INTERNAL',
  message: 'the sidecar failed to handle this request',
  close: true,
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

  server.on('request', async (req: IncomingMessage, res: ServerResponse) => {
    const exchange = newExchange(req);
    let status: number;
    try {
      begin(exchange);
      const result = runFilters(chain, exchange);
      const reply = result instanceof Promise ? await result : result;
      if (reply) {
        sendLocalReply(res, reply, exchange.responseHeaders);
        status = reply.status;
      } else {
        status = await handlers.forward(exchange, res);
      }
    } catch (error) {
      // A bug must cost one request, never the process and every other request.
      status = 500;
      logger.error('request handling failed', { direction, error });
      if (!res.headersSent) sendLocalReply(res, INTERNAL_ERROR);
      else res.destroy();
    }
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
  });

  server.on('upgrade', async (req: IncomingMessage, socket: Duplex, head: Buffer) => {
    // Node drops its own error listener from an upgraded socket; without one,
    // a client reset before the tunnel is up would crash the process.
    socket.on('error', () => socket.destroy());
    // WebSocket only (Envoy's default): any other protocol would turn one
    // authorized request into an opaque stream policy never sees again.
    if (req.headers.upgrade?.toLowerCase() !== 'websocket') {
      writeLocalReplyToSocket(socket, UNSUPPORTED_UPGRADE);
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
        writeLocalReplyToSocket(socket, reply);
        status = reply.status;
      } else {
        req.url = exchange.target!.path + exchange.target!.search;
        handlers.tunnel(exchange, socket, head);
      }
    } catch (error) {
      logger.error('upgrade handling failed', { direction, error });
      writeLocalReplyToSocket(socket, INTERNAL_ERROR);
      status = INTERNAL_ERROR.status;
    }
    end(exchange, status);
  });
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
    writeLocalReplyToSocket(socket, failure);
  } else socket.destroy();
}
