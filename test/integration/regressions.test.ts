/**
 * Regression tests, each named after the defect it pins down.
 */
import { createServer as createHttpsServer } from 'node:https';
import type { AddressInfo } from 'node:net';
import { connect as connectTcp } from 'node:net';
import { connect as connectTls } from 'node:tls';
import t, { type Test } from 'tap';
import { Agent, request } from 'undici';
import { CertificateAuthority } from '../../certs/authority.ts';
import {
  alertsUntil,
  clientCredentials,
  mtlsAgent,
  startEchoApp,
  startOutboundListener,
  startTestMesh,
  untilReady,
  workloadCredentials,
} from '../helpers.ts';
import { startRedis } from '../redis.ts';

/** Writes raw bytes to a TCP or TLS socket and collects the reply until the peer closes. */
function exchange(socket: import('node:net').Socket, text: string): Promise<string> {
  return new Promise((resolve) => {
    let received = '';
    socket.on('data', (chunk) => {
      received += chunk;
    });
    socket.on('error', () => {});
    socket.on('close', () => resolve(received));
    socket.write(text);
  });
}

t.test('control plane crashed on a request target that URL cannot parse', async (t) => {
  const mesh = await startTestMesh(t, '');
  const port = mesh.controlPlane.apiPort;
  for (const target of ['//', '//[', '/\\']) {
    const socket = connectTls({
      host: '127.0.0.1',
      port,
      ca: mesh.controlPlane.ca.bundlePem,
      servername: 'localhost',
    });
    const reply = await exchange(
      socket,
      `GET ${target} HTTP/1.1\r\nhost: x\r\nconnection: close\r\n\r\n`,
    );
    t.match(reply, /^HTTP\/1\.1 (400|404)/, `GET ${target} is answered, not fatal`);
  }
  const verifying = new Agent({ connect: { ca: mesh.controlPlane.ca.bundlePem } });
  t.teardown(() => verifying.close());
  t.equal(
    (await request(`${mesh.controlPlaneUrl}/v1/trust-bundle`, { dispatcher: verifying }))
      .statusCode,
    200,
    'still serving',
  );
});

t.test(
  'a registration whose address is not host:port was accepted and crashed callers',
  async (t) => {
    const mesh = await startTestMesh(t, '');
    await mesh.tokenFor('orders', 'shop');
    const asOrders = new Agent({
      connect: await workloadCredentials(mesh.controlPlane.ca, 'orders', 'shop'),
    });
    t.teardown(() => asOrders.close());
    const res = await request(
      `${mesh.controlPlaneUrl}/v1/snapshots?workload=orders&address=${encodeURIComponent('evil:1/p')}`,
      { dispatcher: asOrders },
    );
    t.equal(res.statusCode, 400);
    t.match(await res.body.text(), /is not host:port/);
  },
);

async function outboundWithRegistry(t: Test, address: string) {
  const ca = await CertificateAuthority.create('cluster.local');
  const { port } = await startOutboundListener(t, ca, [
    {
      service: 'orders',
      namespace: 'shop',
      address,
      spiffeId: 'spiffe://cluster.local/ns/shop/sa/orders',
    },
  ]);
  return { ca, port };
}

t.test('a registry entry that is not host:port is skipped, not dialled', async (t) => {
  const { port } = await outboundWithRegistry(t, 'evil:1/p');
  const res = await request(`http://127.0.0.1:${port}/`, { headers: { host: 'orders' } });
  t.equal(res.statusCode, 502);
  t.match(await res.body.text(), /POSTERN_UNKNOWN_DESTINATION/);
});

t.test('a client reset during an outbound upgrade crashed the sidecar', async (t) => {
  // A peer that completes TLS but never answers, so the tunnel is still waiting when the client resets.
  const ca = await CertificateAuthority.create('cluster.local');
  const hanging = createHttpsServer({
    ...(await clientCredentials(ca, 'spiffe://cluster.local/ns/shop/sa/orders')),
    requestCert: true,
  });
  hanging.on('upgrade', () => {});
  await new Promise<void>((resolve) => hanging.listen(0, '127.0.0.1', resolve));
  t.teardown(() => {
    hanging.closeAllConnections();
    return new Promise((resolve) => hanging.close(resolve));
  });
  const { port } = await outboundWithRegistry(
    t,
    `127.0.0.1:${(hanging.address() as AddressInfo).port}`,
  );
  const socket = connectTcp(port, '127.0.0.1');
  socket.on('error', () => {});
  await new Promise((resolve) => socket.once('connect', resolve));
  socket.write(
    'GET /live HTTP/1.1\r\nhost: orders\r\nconnection: upgrade\r\nupgrade: websocket\r\nsec-websocket-version: 13\r\nsec-websocket-key: dGhlIHNhbXBsZSBub25jZQ==\r\n\r\n',
  );
  await new Promise((resolve) => setTimeout(resolve, 100));
  socket.resetAndDestroy();
  await new Promise((resolve) => setTimeout(resolve, 100));
  const after = await request(`http://127.0.0.1:${port}/`, { headers: { host: 'nowhere' } });
  t.equal(after.statusCode, 502, 'the outbound listener still answers');
  await after.body.dump();
});

t.test('an Upgrade to anything but websocket is refused instead of tunnelled', async (t) => {
  const { port } = await outboundWithRegistry(t, '127.0.0.1:9');
  const reply = await exchange(
    connectTcp(port, '127.0.0.1'),
    'GET / HTTP/1.1\r\nhost: orders\r\nconnection: upgrade\r\nupgrade: h2c\r\n\r\n',
  );
  t.match(reply, /^HTTP\/1\.1 400 POSTERN_UPGRADE_NOT_SUPPORTED/);
});

t.test('the outbound listener refuses targets it cannot route, with the reason', async (t) => {
  const { port } = await outboundWithRegistry(t, '127.0.0.1:9');
  const https = await exchange(
    connectTcp(port, '127.0.0.1'),
    'GET https://orders/ HTTP/1.1\r\nhost: orders\r\n\r\n',
  );
  t.match(https, /^HTTP\/1\.1 400[\s\S]*POSTERN_UNSUPPORTED_SCHEME/);
  const noHost = await exchange(connectTcp(port, '127.0.0.1'), 'GET / HTTP/1.0\r\n\r\n');
  t.match(noHost, /^HTTP\/1\.1 400[\s\S]*POSTERN_NO_DESTINATION/);
  const connectMethod = await exchange(
    connectTcp(port, '127.0.0.1'),
    'CONNECT orders:443 HTTP/1.1\r\nhost: orders:443\r\n\r\n',
  );
  t.match(connectMethod, /^HTTP\/1\.1 405 POSTERN_CONNECT_NOT_SUPPORTED/);
});

t.test(
  "the policies loaded at start never reached the detectors: a route's exfiltration cap alerted only after the next policy change",
  async (t) => {
    const frontend = 'spiffe://cluster.local/ns/shop/sa/frontend';
    const mesh = await startTestMesh(
      t,
      `
apiVersion: postern.dev/v1alpha1
kind: RoutePolicy
metadata: { name: orders-api, namespace: shop }
spec:
  selector: { matchLabels: { app: orders } }
  routes:
    - name: export
      match: { path: { prefix: /export } }
      allow: [{ principals: ["${frontend}"] }]
      exfiltration: { maxResponseBytes: { bytes: "1000", per: 1h } }
`,
      { controlPlane: { detectionLearningMs: 0 } },
    );
    const app = await startEchoApp(t);
    const orders = await mesh.startSidecar({
      workload: 'orders',
      namespace: 'shop',
      appPort: app.port,
      usageWindowSeconds: 1,
    });
    await untilReady(orders.adminPort);
    const caller = mtlsAgent(await clientCredentials(mesh.controlPlane.ca, frontend));
    const operator = mtlsAgent(
      await clientCredentials(
        mesh.controlPlane.ca,
        'spiffe://cluster.local/ns/postern-system/sa/operator',
      ),
    );
    t.teardown(() => Promise.all([caller.close(), operator.close()]));
    const read = await request(`https://127.0.0.1:${orders.inboundPort}/export?size=1600`, {
      dispatcher: caller,
    });
    await read.body.dump();
    t.equal(read.statusCode, 200, 'action alert: the sidecar lets it through');
    await alertsUntil(mesh.controlPlaneUrl, operator, (alerts) =>
      alerts.some((alert) => alert.detector === 'cap'),
    );
    t.pass('the cap alerted on the first window');
  },
);

t.test(
  "closing a control plane whose Redis had gone away hung: the shared detection log's reader waited on a read ioredis never settles",
  async (t) => {
    const redis = await startRedis(t);
    const mesh = await startTestMesh(t, '', { controlPlane: { redisUrl: redis.url } });
    // Let the reader start its blocking read, then take Redis away under it.
    await new Promise((resolve) => setTimeout(resolve, 300));
    await redis.kill();
    await new Promise((resolve) => setTimeout(resolve, 300));
    const closed = await Promise.race([
      mesh.controlPlane.close().then(() => 'closed'),
      new Promise((resolve) => setTimeout(() => resolve('hung'), 5_000)),
    ]);
    t.equal(closed, 'closed');
  },
);
