import type { IncomingMessage, Server, ServerResponse } from 'node:http';
import type { Duplex } from 'node:stream';
import { type Exchange, type Filter, runFilters } from '../filters/filter.ts';
import { sendLocalReply, writeLocalReplyToSocket } from '../http/local-reply.ts';
import type { SidecarMetrics } from '../telemetry/metrics.ts';

export interface ExchangeHandlers {
  readonly direction: 'inbound' | 'outbound';
  readonly chain: readonly Filter[];
  readonly metrics: SidecarMetrics;
  /** Sends a request the chain let through upstream; resolves with the status the client got. */
  forward(exchange: Exchange, res: ServerResponse): Promise<number>;
  /** Tunnels an Upgrade request the chain let through. */
  tunnel(exchange: Exchange, socket: Duplex, head: Buffer): void;
}

/**
 * The glue both listeners share: run the direction's filter chain on each
 * request (and on each Upgrade request), answer locally when a filter
 * replies, otherwise forward or tunnel; record metrics. Returns the set of
 * open tunnels, which an HTTP server no longer tracks once upgraded, so that
 * closing the listener can close them.
 */
export function serveExchanges(server: Server, handlers: ExchangeHandlers): Set<Duplex> {
  const { direction, chain, metrics } = handlers;
  const tunnels = new Set<Duplex>();

  server.on('request', async (req: IncomingMessage, res: ServerResponse) => {
    const exchange: Exchange = { req, startedAt: performance.now() };
    const reply = runFilters(chain, exchange);
    let status: number;
    if (reply) {
      sendLocalReply(res, reply);
      status = reply.status;
    } else {
      status = await handlers.forward(exchange, res);
    }
    const decision = exchange.decision ? (exchange.decision.allowed ? 'allow' : 'deny') : 'none';
    metrics.requests.inc({ direction, decision, code: String(status) });
    metrics.duration.observe({ direction }, (performance.now() - exchange.startedAt) / 1000);
  });

  server.on('upgrade', (req: IncomingMessage, socket: Duplex, head: Buffer) => {
    const exchange: Exchange = { req, startedAt: performance.now() };
    const reply = runFilters(chain, exchange);
    if (reply) {
      writeLocalReplyToSocket(socket, reply);
      return;
    }
    req.url = exchange.target!.path + exchange.target!.search;
    tunnels.add(socket);
    socket.once('close', () => tunnels.delete(socket));
    handlers.tunnel(exchange, socket, head);
  });

  return tunnels;
}
