import type { IncomingMessage, Server, ServerResponse } from 'node:http';
import type { Duplex } from 'node:stream';
import type { Logger } from '../../common/log.ts';
import { type Exchange, type Filter, runFilters } from '../filters/filter.ts';
import { upstreamFailure } from '../http/forward.ts';
import { sendLocalReply, writeLocalReplyToSocket } from '../http/local-reply.ts';
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
  readonly direction: 'inbound' | 'outbound';
  readonly logger: Logger;
  readonly chain: readonly Filter[];
  readonly metrics: SidecarMetrics;
  /** Sends a request the chain let through upstream; resolves with the status the client got. */
  forward(exchange: Exchange, res: ServerResponse): Promise<number>;
  /** Tunnels an Upgrade request the chain let through. */
  tunnel(exchange: Exchange, socket: Duplex, head: Buffer): void;
  /** Told of every request once it is answered (usage records). */
  answered?(exchange: Exchange, status: number): void;
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
    principal: undefined,
    claims: undefined,
    dropHeaders: undefined,
    addHeaders: undefined,
    certificateThumbprint: undefined,
    decision: undefined,
    responseHeaders: undefined,
    responseBytes: undefined,
    unknownDestination: undefined,
    destination: undefined,
  };
}

export function serveExchanges(server: Server, handlers: ExchangeHandlers): void {
  const { direction, chain, metrics } = handlers;

  server.on('request', async (req: IncomingMessage, res: ServerResponse) => {
    const exchange = newExchange(req);
    let status: number;
    try {
      const result = runFilters(chain, exchange);
      const reply = result instanceof Promise ? await result : result;
      if (reply) {
        sendLocalReply(res, reply);
        status = reply.status;
      } else {
        status = await handlers.forward(exchange, res);
      }
    } catch (error) {
      // A bug must cost one request, never the process and every other request.
      status = 500;
      handlers.logger.error('request handling failed', { direction, error });
      if (!res.headersSent) sendLocalReply(res, INTERNAL_ERROR);
      else res.destroy();
    }
    const decision = exchange.decision ? (exchange.decision.allowed ? 'allow' : 'deny') : 'none';
    metrics.requests.inc(direction, decision, status);
    metrics.duration.observe((performance.now() - exchange.startedAt) / 1000, direction);
    handlers.answered?.(exchange, status);
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
    try {
      const result = runFilters(chain, exchange);
      const reply = result instanceof Promise ? await result : result;
      if (reply) {
        writeLocalReplyToSocket(socket, reply);
        return;
      }
      req.url = exchange.target!.path + exchange.target!.search;
      handlers.tunnel(exchange, socket, head);
    } catch (error) {
      handlers.logger.error('upgrade handling failed', { direction, error });
      writeLocalReplyToSocket(socket, INTERNAL_ERROR);
    }
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
