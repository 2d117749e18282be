import type { TLSSocket } from 'node:tls';
import t from 'tap';
import { buildConnector, Client, ProxyAgent, request } from 'undici';
import {
  adminConfig,
  clientCredentials,
  eventually,
  ordersPolicyYaml,
  shopSidecars,
  startEchoApp,
  startTestMesh,
  TESTER,
  untilReady,
} from '../helpers.ts';

const FRONTEND = 'spiffe://cluster.local/ns/shop/sa/frontend';
const POLICY = ordersPolicyYaml([TESTER, FRONTEND]);

async function certificateNotAfter(adminPort: number): Promise<string> {
  return (await adminConfig(adminPort)).certificate?.notAfter ?? '';
}

t.test('SVIDs rotate at half life and are hot-swapped without dropping connections', async (t) => {
  // 4-second SVIDs: the sidecars renew about two seconds after each issue.
  const mesh = await startTestMesh(t, POLICY, { svidTtlMs: 4000 });
  const app = await startEchoApp(t);
  const { orders, frontend } = await shopSidecars(mesh, app.port);
  await untilReady(orders.adminPort);

  // One keep-alive connection, counted: the connector runs once per new TCP+TLS connection.
  const tester = await clientCredentials(mesh.controlPlane.ca, TESTER);
  const connect = buildConnector({ ...tester, checkServerIdentity: () => undefined });
  const serials: string[] = [];
  const counted: buildConnector.connector = (options, callback) =>
    connect(options, (error, socket) => {
      if (socket) serials.push((socket as TLSSocket).getPeerCertificate().serialNumber);
      callback(error as null, socket as never);
    });
  const client = new Client(`https://127.0.0.1:${orders.inboundPort}`, {
    connect: counted,
    keepAliveTimeout: 60_000,
  });
  t.teardown(() => client.close());

  const first = await client.request({ method: 'GET', path: '/orders' });
  t.equal(first.statusCode, 200);
  await first.body.dump();
  const firstNotAfter = await certificateNotAfter(orders.adminPort);
  const frontendFirstNotAfter = await certificateNotAfter(frontend.adminPort);

  await eventually(
    async () => (await certificateNotAfter(orders.adminPort)) !== firstNotAfter,
    10_000,
  );
  t.pass('orders renewed its certificate');

  const second = await client.request({ method: 'GET', path: '/orders' });
  t.equal(
    second.statusCode,
    200,
    'the connection opened before the rotation still serves requests',
  );
  await second.body.dump();
  t.equal(serials.length, 1, 'no reconnection was needed');

  const fresh = new Client(`https://127.0.0.1:${orders.inboundPort}`, { connect: counted });
  t.teardown(() => fresh.close());
  const third = await fresh.request({ method: 'GET', path: '/orders' });
  await third.body.dump();
  t.equal(serials.length, 2);
  t.not(serials[1], serials[0], 'a new connection is served with the renewed certificate');

  // The outbound side renewed too and still reaches orders with the new certificates.
  await eventually(
    async () => (await certificateNotAfter(frontend.adminPort)) !== frontendFirstNotAfter,
    10_000,
  );
  const proxy = new ProxyAgent(`http://127.0.0.1:${frontend.outboundPort}`);
  t.teardown(() => proxy.close());
  const viaFrontend = await request('http://orders/orders', { dispatcher: proxy });
  t.equal(viaFrontend.statusCode, 200);
  t.equal(
    ((await viaFrontend.body.json()) as { headers: Record<string, string> }).headers[
      'x-postern-principal'
    ],
    FRONTEND,
  );
});
