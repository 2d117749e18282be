import { writeFile } from 'node:fs/promises';
import type { AddressInfo } from 'node:net';
import { connect, createServer, type Socket } from 'node:net';
import { join } from 'node:path';
import t from 'tap';
import { request } from 'undici';
import {
  adminConfig,
  clientCredentials,
  eventually,
  mtlsAgent,
  ordersPolicyYaml,
  startEchoApp,
  startTestMesh,
  TESTER,
} from '../helpers.ts';

const OTHER = 'spiffe://cluster.local/ns/default/sa/other';

/**
 * A TCP relay that can cut the network the way a failed link does: no reset,
 * no FIN, bytes simply stop flowing, and new connections hang. `heal()`
 * relays new connections again; connections stranded by the cut stay dead
 * and silent, as they would on a real network.
 */
async function cuttableLink(t: { teardown(fn: () => unknown): void }, targetPort: number) {
  let cut = false;
  const sockets = new Set<Socket>();
  const server = createServer((client) => {
    sockets.add(client);
    client.on('error', () => {});
    client.once('close', () => sockets.delete(client));
    if (cut) {
      client.pause(); // accepted, never answered
      return;
    }
    const upstream = connect(targetPort, '127.0.0.1');
    sockets.add(upstream);
    upstream.on('error', () => client.destroy());
    upstream.once('close', () => sockets.delete(upstream));
    client.pipe(upstream);
    upstream.pipe(client);
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  t.teardown(() => {
    for (const socket of sockets) socket.destroy();
    return new Promise((resolve) => server.close(resolve));
  });
  return {
    port: (server.address() as AddressInfo).port,
    cut() {
      cut = true;
      for (const socket of sockets) {
        socket.unpipe();
        socket.pause();
      }
    },
    heal() {
      cut = false;
    },
  };
}

t.test(
  'a network cut to the control plane: detected by silence, enforcement goes on, the watch comes back',
  async (t) => {
    // Keep-alives every 100 ms; the sidecar presumes the stream cut after 600 ms of silence.
    const mesh = await startTestMesh(t, ordersPolicyYaml([TESTER]), { keepAliveMs: 100 });
    const link = await cuttableLink(t, mesh.controlPlane.apiPort);
    const app = await startEchoApp(t);
    const sidecar = await mesh.startSidecar({
      workload: 'orders',
      namespace: 'shop',
      appPort: app.port,
      controlPlaneUrl: `https://127.0.0.1:${link.port}`,
      watchIdleTimeoutMs: 600,
    });
    const version = async () => (await adminConfig(sidecar.adminPort)).version;
    await eventually(async () => (await version()) !== null);
    const other = mtlsAgent(await clientCredentials(mesh.controlPlane.ca, OTHER));
    t.teardown(() => other.close());
    const status = async () => {
      const res = await request(`https://127.0.0.1:${sidecar.inboundPort}/orders`, {
        dispatcher: other,
      });
      await res.body.dump();
      return res.statusCode;
    };

    link.cut();
    // The change made during the cut cannot arrive; the sidecar keeps its last good snapshot.
    await writeFile(join(mesh.policiesDir, 'policies.yaml'), ordersPolicyYaml([TESTER, OTHER]));
    await new Promise((resolve) => setTimeout(resolve, 1000));
    t.equal(await status(), 403, 'still enforcing the snapshot from before the cut');
    const before = await version();

    link.heal();
    // Only silence detection gets the sidecar off its stranded stream.
    await eventually(async () => (await version()) !== before, 15_000);
    t.equal(
      await status(),
      200,
      'after the link heals the sidecar has the change made during the cut',
    );
  },
);
