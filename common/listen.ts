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
