import { writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import t from 'tap';
import { ProxyAgent, request } from 'undici';
import { WebSocket, WebSocketServer } from 'ws';
import {
  adminConfig,
  eventually,
  ordersPolicyYaml,
  startEchoApp,
  startTestMesh,
} from '../helpers.ts';

const FRONTEND = 'spiffe://cluster.local/ns/shop/sa/frontend';
const policy = (allowed: string) => ordersPolicyYaml([allowed]);

t.test('frontend calls orders through both sidecars', async (t) => {
  const mesh = await startTestMesh(t, policy(FRONTEND));
  const orders = await startEchoApp(t);
  const wss = new WebSocketServer({ server: orders.server });
  wss.on('connection', (ws, req) =>
    ws.on('message', (m) => ws.send(`${m} from ${req.headers['x-postern-principal']}`)),
  );
  const ordersSidecar = await mesh.startSidecar({
    workload: 'orders',
    namespace: 'shop',
    appPort: orders.port,
  });
  // The frontend app is this test: it talks plain HTTP to its sidecar's outbound port.
  const frontendApp = await startEchoApp(t);
  const frontend = await mesh.startSidecar({
    workload: 'frontend',
    namespace: 'shop',
    appPort: frontendApp.port,
  });
  const proxy = new ProxyAgent(`http://127.0.0.1:${frontend.outboundPort}`);
  t.teardown(() => proxy.close());
  const ready = async (port: number) =>
    (await request(`http://127.0.0.1:${port}/healthz/ready`)).statusCode === 200;
  await eventually(
    async () => (await ready(ordersSidecar.adminPort)) && (await ready(frontend.adminPort)),
  );
  // frontend's snapshot lists orders once orders has registered, and only
  // orders: no policy lets frontend call itself.
  await eventually(async () => {
    return (await adminConfig(frontend.adminPort)).snapshot?.registry.length === 1;
  });
  t.match((await adminConfig(frontend.adminPort)).snapshot?.registry, [{ service: 'orders' }]);

  await t.test(
    "as an explicit proxy, by service name: orders sees frontend's identity, not a forged one",
    async (t) => {
      const res = await request('http://orders/orders/7', {
        dispatcher: proxy,
        headers: { 'x-postern-principal': 'spiffe://cluster.local/ns/kube-system/sa/admin' },
      });
      t.equal(res.statusCode, 200);
      const echoed = (await res.body.json()) as { url: string; headers: Record<string, string> };
      t.equal(echoed.url, '/orders/7');
      t.equal(echoed.headers['x-postern-principal'], FRONTEND);
    },
  );

  await t.test('by Host header, with the fully qualified service name', async (t) => {
    const res = await request(`http://127.0.0.1:${frontend.outboundPort}/orders`, {
      headers: { host: 'orders.shop.svc.cluster.local' },
    });
    t.equal(res.statusCode, 200);
    t.equal(
      ((await res.body.json()) as { headers: Record<string, string> }).headers[
        'x-postern-principal'
      ],
      FRONTEND,
    );
  });

  await t.test('a destination outside the registry is refused, not passed through', async (t) => {
    const res = await request('http://api.partner.example/steal', { dispatcher: proxy });
    t.equal(res.statusCode, 502);
    t.equal(
      ((await res.body.json()) as { error: { code: string } }).error.code,
      'POSTERN_UNKNOWN_DESTINATION',
    );
  });

  await t.test(
    'a WebSocket upgrade is tunnelled from app to app through both sidecars',
    async (t) => {
      const ws = new WebSocket(`ws://127.0.0.1:${frontend.outboundPort}/live`, {
        headers: { host: 'orders' },
      });
      await new Promise((resolve, reject) => {
        ws.once('open', resolve);
        ws.once('error', reject);
      });
      const reply = new Promise<string>((resolve) => ws.once('message', (m) => resolve(String(m))));
      ws.send('hello');
      t.equal(await reply, `hello from ${FRONTEND}`);
      ws.close();
    },
  );

  await t.test(
    "an edit of the policy file on disk reaches orders' sidecar and is enforced",
    async (t) => {
      // frontend keeps /live (so it still may call orders and has it in its
      // registry) and loses /orders.
      await writeFile(
        join(mesh.policiesDir, 'policies.yaml'),
        policy('spiffe://cluster.local/ns/shop/sa/someone-else').replace(
          /(name: live[\s\S]*?principals: )\[[^\]]*\]/,
          `$1[${FRONTEND}]`,
        ),
      );
      await eventually(async () => {
        const res = await request('http://orders/orders', { dispatcher: proxy });
        await res.body.dump();
        return res.statusCode === 403;
      });
      t.pass('frontend is denied after the edit');
    },
  );
});
