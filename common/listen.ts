import type { Server as HttpServer } from 'node:http';
import type { AddressInfo, Server, Socket } from 'node:net';

// Every socket a server accepted, so that closing it can end them all: a
// connection still in its TLS handshake when close() is called is not yet
// an HTTP connection that closeAllConnections() knows of, and would hold
// close() open for as long as it lives (an SSE stream: forever).
const accepted = new WeakMap<Server, Set<Socket>>();

/**
 * Listens and resolves with the bound port (port 0 picks a free one), or
 * rejects with the listen error. `backlog` is the kernel's queue of
 * connections not yet accepted (Node's default 511; the kernel caps it at
 * net.core.somaxconn): a control plane thousands of sidecars reconnect to
 * at once needs more.
 */
export async function listen(
  server: Server,
  port: number,
  host: string,
  backlog?: number,
): Promise<number> {
  const sockets = new Set<Socket>();
  accepted.set(server, sockets);
  server.on('connection', (socket: Socket) => {
    sockets.add(socket);
    socket.once('close', () => sockets.delete(socket));
  });
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen({ port, host, ...(backlog ? { backlog } : {}) }, () => {
      server.off('error', reject);
      resolve();
    });
  });
  return (server.address() as AddressInfo).port;
}

/** Stops listening and ends every connection, open or half-open; resolves once the server is closed. */
export async function closeServer(server: Server): Promise<void> {
  const closed = new Promise<void>((resolve) => server.close(() => resolve()));
  for (const socket of accepted.get(server) ?? []) socket.destroy();
  await closed;
}

/** HTTP servers whose connections close after their current response (see drainServer). */
const draining = new WeakSet<Server>();

/** Whether `server` is draining: each response it sends now closes its connection (Connection: close). */
export function isDraining(server: Server): boolean {
  return draining.has(server);
}

/** Whether the server a connection came through is draining (for a response begun before the drain). */
export function socketDraining(socket: Socket | null | undefined): boolean {
  const server = (socket as (Socket & { server?: Server }) | null | undefined)?.server;
  return server ? draining.has(server) : false;
}

const DRAIN_POLL_MS = 50;

/**
 * Drains a listener: `front` (the server that accepts) stops accepting at
 * once; every response the HTTP servers in `http` send from now on closes
 * its connection, and connections idle between requests are closed as they
 * become idle, so a keep-alive client is not cut mid-request. Resolves with
 * how many connections were still open after `graceMs` (those are then
 * destroyed), 0 when all finished in time.
 */
export async function drainServer(
  front: Server,
  http: readonly HttpServer[],
  graceMs: number,
): Promise<number> {
  draining.add(front);
  for (const server of http) draining.add(server);
  const closed = new Promise<void>((resolve) => front.close(() => resolve()));
  const sockets = accepted.get(front) ?? new Set<Socket>();
  const deadline = performance.now() + graceMs;
  while (sockets.size && performance.now() < deadline) {
    for (const server of http) server.closeIdleConnections();
    await new Promise((resolve) => setTimeout(resolve, DRAIN_POLL_MS));
  }
  const left = sockets.size;
  for (const socket of sockets) socket.destroy();
  await closed;
  return left;
}
