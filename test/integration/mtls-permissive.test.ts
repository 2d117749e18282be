import { writeFile } from 'node:fs/promises';
import { connect } from 'node:net';
import { join } from 'node:path';
import t from 'tap';
import { Client, request } from 'undici';
import { adminMetrics, eventually, ordersBehindSidecar, TESTER } from '../helpers.ts';

const policy = (mtls: 'STRICT' | 'PERMISSIVE') => `
apiVersion: postern.dev/v1alpha1
kind: RoutePolicy
metadata: { name: orders-api, namespace: shop }
spec:
  selector: { matchLabels: { app: orders } }
  mtls: ${mtls}
  routes:
    - name: public
      match: { path: { prefix: /public } }
      allow:
        - { sourceIPs: ["127.0.0.1/32"] }
    - name: private
      match: { path: { prefix: /private } }
      allow:
        - { principals: ["${TESTER}"] }
    - name: anyone-in-the-mesh
      match: { path: { prefix: /mesh } }
      allow:
        - { principals: ["*"] }
`;

/** One plaintext connection (undici Client, one socket): what a caller not yet in the mesh uses. */
class PlainClient {
  readonly #client: Client;
  disconnects = 0;
  constructor(port: number) {
    this.#client = new Client(`http://127.0.0.1:${port}`);
    this.#client.on('disconnect', () => this.disconnects++);
  }
  async get(path: string): Promise<{ status: number; body: Record<string, unknown> }> {
    const res = await this.#client.request({ method: 'GET', path });
    return { status: res.statusCode, body: (await res.body.json()) as Record<string, unknown> };
  }
  close(): Promise<void> {
    return this.#client.close();
  }
}

t.test('mtls PERMISSIVE: plaintext beside mTLS on one port, for migration', async (t) => {
  const { mesh, app, sidecar, agent } = await ordersBehindSidecar(t, policy('PERMISSIVE'));
  const port = sidecar.inboundPort;
  const metrics = async () =>
    (await adminMetrics(sidecar.adminPort)).match(
      /postern_inbound_plaintext_requests_total\{outcome="(\w+)"\} (\d+)/g,
    ) ?? [];

  const plain = new PlainClient(port);
  t.teardown(() => plain.close());

  await t.test(
    'a plaintext request carries no principal and matches only entries that name none',
    async (t) => {
      const res = await plain.get('/public');
      t.equal(res.status, 200);
      const headers = (res.body as { headers: Record<string, string> }).headers;
      t.notOk('x-postern-principal' in headers);
      t.notOk('x-forwarded-client-cert' in headers);
      t.equal(headers['x-forwarded-proto'], 'http', 'the app can tell it came in plaintext');
      t.equal((await plain.get('/private')).status, 403, 'an entry naming the caller');
      t.equal((await plain.get('/mesh')).status, 403, 'an entry for any principal');
    },
  );

  await t.test('mTLS callers on the same port keep their identity', async (t) => {
    const res = await request(`https://127.0.0.1:${port}/private`, { dispatcher: agent });
    t.equal(res.statusCode, 200);
    t.match(await res.body.json(), { headers: { 'x-postern-principal': TESTER } });
  });

  await t.test('plaintext requests are counted', async (t) => {
    t.same(await metrics(), ['postern_inbound_plaintext_requests_total{outcome="accepted"} 3']);
  });

  await t.test(
    'back to STRICT, plaintext is refused, on new connections and on those already open',
    async (t) => {
      await writeFile(join(mesh.policiesDir, 'policies.yaml'), policy('STRICT'));
      await eventually(async () => {
        const probe = new PlainClient(port);
        const { status } = await probe.get('/public');
        await probe.close();
        return status === 400;
      });
      const before = app.requests.length;
      const res = await plain.get('/public');
      t.equal(res.status, 400);
      t.match(res.body, { error: { code: 'POSTERN_MTLS_REQUIRED' } });
      await eventually(() => plain.disconnects === 1);
      t.pass('and the connection is closed');
      t.equal(app.requests.length, before, 'the app saw none of them');
      t.match((await metrics()).join('\n'), /outcome="refused"\} [1-9]/);
      const tls = await request(`https://127.0.0.1:${port}/private`, { dispatcher: agent });
      t.equal(tls.statusCode, 200, 'mTLS is unaffected');
      await tls.body.dump();
    },
  );
});

t.test(
  'STRICT is the default: a workload whose policy says nothing refuses plaintext',
  async (t) => {
    const { app, sidecar } = await ordersBehindSidecar(
      t,
      policy('STRICT').replace('  mtls: STRICT\n', ''),
    );
    const plain = new PlainClient(sidecar.inboundPort);
    t.teardown(() => plain.close());
    const res = await plain.get('/public');
    t.equal(res.status, 400);
    t.match(res.body, { error: { code: 'POSTERN_MTLS_REQUIRED' } });
    t.equal(app.requests.length, 0);
  },
);

t.test('a connection that sends nothing is closed after the handshake timeout', async (t) => {
  const { sidecar } = await ordersBehindSidecar(t, policy('PERMISSIVE'));
  const silent = connect(sidecar.inboundPort, '127.0.0.1');
  silent.on('error', () => {});
  t.teardown(() => silent.destroy());
  const started = Date.now();
  await new Promise((resolve) => silent.once('close', resolve));
  t.ok(Date.now() - started >= 4_000, 'held for the 5 s handshake timeout, then closed');
});
