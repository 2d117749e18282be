import type { AddressInfo, Server } from 'node:net';

/** Listens and resolves with the bound port (port 0 picks a free one), or rejects with the listen error. */
export async function listen(server: Server, port: number, host: string): Promise<number> {
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(port, host, () => {
      server.off('error', reject);
      resolve();
    });
  });
  return (server.address() as AddressInfo).port;
}

/** Closes a server and waits; open keep-alive connections are closed too. */
export async function closeServer(
  server: Server & { closeAllConnections?: () => void },
): Promise<void> {
  server.closeAllConnections?.();
  await new Promise<void>((resolve) => server.close(() => resolve()));
}
