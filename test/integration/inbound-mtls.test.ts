import { request as httpsRequest } from 'node:https';
import { connect } from 'node:tls';
import t, { type Test } from 'tap';
import { request } from 'undici';
import { type ClientOptions, WebSocket, WebSocketServer } from 'ws';
import { CertificateAuthority } from '../../certs/authority.ts';
import { generateKeyPair, privateKeyToPem } from '../../certs/x509.ts';
import {
  clientCredentials,
  eventually,
  mtlsAgent,
  ordersBehindSidecar,
  ordersPolicyYaml,
  type PemCredentials,
  startEchoApp,
  startTestMesh,
  TESTER,
} from '../helpers.ts';
import { mtlsExchange } from '../raw-http.ts';

const POLICY = ordersPolicyYaml([TESTER]);

/** Opens a TLS connection, sends one request, and reports what came back (nothing, for a refused handshake). */
function rawRequest(
  port: number,
  credentials: Partial<PemCredentials> & { ca: string },
): Promise<{ received: string; error?: string }> {
  return new Promise((resolve) => {
    let received = '';
    let error: string | undefined;
    const socket = connect({
      host: '127.0.0.1',
      port,
      ...credentials,
      checkServerIdentity: () => undefined,
    });
    socket.on('secureConnect', () => socket.write('GET /orders HTTP/1.1\r\nhost: orders\r\n\r\n'));
    socket.on('data', (chunk) => {
      received += chunk;
      socket.end();
    });
    socket.on('error', (e: NodeJS.ErrnoException) => {
      error = e.code ?? e.message;
    });
    socket.on('close', () => resolve({ received, ...(error ? { error } : {}) }));
  });
}

t.test('the inbound listener over real mTLS', async (t) => {
  const mesh = await startTestMesh(t, POLICY);
  const app = await startEchoApp(t);
  const wss = new WebSocketServer({ server: app.server });
  wss.on('connection', (ws, req) =>
    ws.on('message', (m) => ws.send(`echo:${m}:${req.headers['x-postern-principal']}`)),
  );
  const sidecar = await mesh.startSidecar({
    workload: 'orders',
    namespace: 'shop',
    appPort: app.port,
  });
  const base = `https://127.0.0.1:${sidecar.inboundPort}`;
  const tester = await clientCredentials(mesh.controlPlane.ca, TESTER);
  const agent = mtlsAgent(tester);
  t.teardown(() => agent.close());
  // The sidecar becomes ready once its first snapshot arrives.
  const ready = async () =>
    (await request(`http://127.0.0.1:${sidecar.adminPort}/healthz/ready`)).statusCode === 200;
  while (!(await ready())) await new Promise((r) => setTimeout(r, 20));

  await t.test(
    'a client with a mesh certificate reaches the app and the app learns who called',
    async (t) => {
      const res = await request(`${base}/orders?x=1`, { dispatcher: agent });
      t.equal(res.statusCode, 200);
      const echoed = (await res.body.json()) as { url: string; headers: Record<string, string> };
      t.equal(echoed.url, '/orders?x=1');
      t.equal(echoed.headers['x-postern-principal'], TESTER);
      t.match(
        echoed.headers['x-forwarded-client-cert'],
        /^By=spiffe:\/\/cluster\.local\/ns\/shop\/sa\/orders;Hash=[0-9a-f]{64};URI=spiffe:\/\/cluster\.local\/ns\/default\/sa\/tester$/,
      );
    },
  );

  await t.test(
    'identity headers a client sends are stripped and replaced by the sidecar',
    async (t) => {
      const res = await request(`${base}/orders`, {
        dispatcher: agent,
        headers: {
          'x-postern-principal': 'spiffe://cluster.local/ns/kube-system/sa/admin',
          'x-forwarded-client-cert': 'URI=spiffe://cluster.local/ns/kube-system/sa/admin',
          'x-postern-anything': 'forged',
        },
      });
      const echoed = (await res.body.json()) as { headers: Record<string, string> };
      t.equal(echoed.headers['x-postern-principal'], TESTER);
      t.notMatch(echoed.headers['x-forwarded-client-cert'], /kube-system/);
      t.equal(echoed.headers['x-postern-anything'], undefined);
    },
  );

  await t.test('hop-by-hop headers, and headers Connection names, are not forwarded', async (t) => {
    // node:https, not undici: undici refuses to send a Connection header that names other headers.
    const echoed = await new Promise<{ headers: Record<string, string> }>((resolve, reject) => {
      const req = httpsRequest(`${base}/orders`, {
        ...tester,
        checkServerIdentity: () => undefined,
        headers: {
          connection: 'close, x-private-hop',
          'x-private-hop': 'secret',
          te: 'trailers',
          'x-kept': 'yes',
        },
      });
      req.on('response', async (res) => {
        let text = '';
        for await (const chunk of res) text += chunk;
        resolve(JSON.parse(text));
      });
      req.on('error', reject);
      req.end();
    });
    t.equal(echoed.headers['x-private-hop'], undefined);
    t.equal(echoed.headers.te, undefined);
    t.equal(echoed.headers['x-kept'], 'yes');
  });

  await t.test('request and response bodies stream through', async (t) => {
    const body = 'x'.repeat(256 * 1024);
    const res = await request(`${base}/orders`, { dispatcher: agent, method: 'POST', body });
    const echoed = (await res.body.json()) as { body: string; method: string };
    t.equal(echoed.method, 'POST');
    t.equal(echoed.body.length, body.length);
  });

  await t.test(
    'a route with an explicit deny answers 403 naming the policy and rule, and the app sees nothing',
    async (t) => {
      const before = app.requests.length;
      const res = await request(`${base}/admin/users`, { dispatcher: agent });
      t.equal(res.statusCode, 403);
      t.same(await res.body.json(), {
        error: {
          code: 'POSTERN_DENIED',
          message: 'denied by policy',
          policy: 'shop/orders-api',
          route: 'admin',
          rule: 'deny[0]',
          reason: 'deny-rule-matched',
        },
      });
      t.equal(app.requests.length, before);
    },
  );

  await t.test('a path that could be read two ways gets 400 and a closed connection', async (t) => {
    const before = app.requests.length;
    const res = await mtlsExchange(
      sidecar.inboundPort,
      tester,
      'GET /orders/..%2fadmin HTTP/1.1\r\nhost: orders\r\n\r\n',
    );
    t.match(res, /^HTTP\/1\.1 400/);
    t.match(res, /connection: close/i);
    t.equal(app.requests.length, before);
  });

  await t.test(
    'a malformed request gets 400 and a closed connection, and nothing is forwarded',
    async (t) => {
      const before = app.requests.length;
      const garbage = await mtlsExchange(sidecar.inboundPort, tester, 'GARBAGE / HTTP/1.1\r\n\r\n');
      t.match(garbage, /^HTTP\/1\.1 400/);
      // Content-Length with Transfer-Encoding is the classic smuggling shape: refused, never guessed at.
      const smuggle = await mtlsExchange(
        sidecar.inboundPort,
        tester,
        'POST /orders HTTP/1.1\r\nhost: orders\r\ncontent-length: 4\r\ntransfer-encoding: chunked\r\n\r\n0\r\n\r\n',
      );
      t.match(smuggle, /^HTTP\/1\.1 400/);
      t.equal(app.requests.length, before);
    },
  );

  await t.test('a client sending Expect: 100-continue gets its 100 and its response', async (t) => {
    const echoed = await new Promise<{ status: number; body: string }>((resolve, reject) => {
      const req = httpsRequest(`${base}/orders`, {
        ...tester,
        method: 'POST',
        checkServerIdentity: () => undefined,
        headers: { expect: '100-continue', 'content-length': '5' },
      });
      req.on('continue', () => req.end('hello'));
      req.on('response', async (res) => {
        let text = '';
        for await (const chunk of res) text += chunk;
        resolve({ status: res.statusCode ?? 0, body: text });
      });
      req.on('error', reject);
    });
    t.equal(echoed.status, 200);
    t.match(JSON.parse(echoed.body), { body: 'hello' });
  });

  await t.test(
    'an app that breaks mid-body cuts the response: no truncated body passes as whole',
    async (t) => {
      const res = await request(`${base}/orders?size=1000000&break=1`, { dispatcher: agent });
      t.equal(res.statusCode, 200);
      await t.rejects(res.body.arrayBuffer(), 'reading the body fails rather than ending early');
    },
  );

  await t.test('a large response reaches a client that reads slowly, whole', async (t) => {
    const size = 16 * 1024 * 1024;
    const res = await request(`${base}/orders?size=${size}`, { dispatcher: agent });
    let received = 0;
    for await (const chunk of res.body) {
      received += chunk.length;
      // A reader slower than loopback: the sidecar must hold the app back, not drop or buffer it all.
      if (received < size / 4) await new Promise((resolve) => setImmediate(resolve));
    }
    t.equal(received, size);
  });

  await t.test('a client that disconnects cancels its request to the app', async (t) => {
    const socket = connect({
      host: '127.0.0.1',
      port: sidecar.inboundPort,
      ...tester,
      checkServerIdentity: () => undefined,
    });
    socket.on('error', () => {});
    await new Promise((resolve) => socket.once('secureConnect', resolve));
    socket.write('GET /orders?delay=2500&abandon=1 HTTP/1.1\r\nhost: orders\r\n\r\n');
    await eventually(() => app.requests.some((r) => r.url?.includes('abandon=1')));
    const appSide = app.requests.find((r) => r.url?.includes('abandon=1'))!;
    socket.destroy();
    await eventually(() => appSide.socket.destroyed, 1500);
    t.pass('the app-side connection was closed long before the app would have answered');
  });

  await t.test(
    'a mesh certificate that proves no SPIFFE ID is refused before policy',
    async (t) => {
      const before = app.requests.length;
      const keys = await generateKeyPair();
      const anonymous = {
        cert: await mesh.controlPlane.ca.issue(keys.publicKey, {
          uris: [],
          dnsNames: ['tool.example'],
          ttlMs: 3600_000,
        }),
        key: privateKeyToPem(keys.privateKey),
        ca: tester.ca,
      };
      const agentWithoutId = mtlsAgent(anonymous);
      t.teardown(() => agentWithoutId.close());
      const res = await request(`${base}/orders`, { dispatcher: agentWithoutId });
      t.equal(res.statusCode, 403);
      t.match(await res.body.json(), { error: { code: 'POSTERN_NO_IDENTITY' } });
      t.equal(app.requests.length, before);
    },
  );

  const refusedAtHandshake = async (
    t: Test,
    credentials: Partial<PemCredentials> & { ca: string },
  ) => {
    const before = app.requests.length;
    const failuresBefore = await handshakeFailures(sidecar.adminPort);
    const result = await rawRequest(sidecar.inboundPort, credentials);
    // TLS 1.3: the client saw its handshake complete; the refusal arrives as
    // an alert or a close on its first read, never as a response.
    t.equal(
      result.received,
      '',
      `the client's first read gets no response (${result.error ?? 'closed'})`,
    );
    t.equal(app.requests.length, before, 'the app saw nothing');
    t.equal(
      await handshakeFailures(sidecar.adminPort),
      failuresBefore + 1,
      'the sidecar reports the TLS error',
    );
  };

  await t.test('a client without a certificate is refused at the handshake', (t) =>
    refusedAtHandshake(t, { ca: tester.ca }),
  );

  await t.test('a client with an expired certificate is refused at the handshake', async (t) => {
    const expired = await clientCredentials(mesh.controlPlane.ca, TESTER, {
      ttlMs: 3600_000,
      now: new Date(Date.now() - 48 * 3600_000),
    });
    await refusedAtHandshake(t, expired);
  });

  await t.test(
    'a client with a certificate from another CA is refused at the handshake',
    async (t) => {
      const otherCa = await CertificateAuthority.create('cluster.local');
      const stranger = await clientCredentials(otherCa, TESTER);
      await refusedAtHandshake(t, { ...stranger, ca: tester.ca });
    },
  );

  await t.test('a WebSocket upgrade is authorized and tunnelled end to end', async (t) => {
    const ws = new WebSocket(`wss://127.0.0.1:${sidecar.inboundPort}/live`, {
      ...tester,
      checkServerIdentity: () => undefined,
    } as unknown as ClientOptions);
    await new Promise((resolve, reject) => {
      ws.once('open', resolve);
      ws.once('error', reject);
    });
    const reply = new Promise<string>((resolve) => ws.once('message', (m) => resolve(String(m))));
    ws.send('ping');
    t.equal(await reply, `echo:ping:${TESTER}`);
    ws.close();
  });

  await t.test(
    'a WebSocket upgrade to a denied route is refused before reaching the app',
    async (t) => {
      const ws = new WebSocket(`wss://127.0.0.1:${sidecar.inboundPort}/admin`, {
        ...tester,
        checkServerIdentity: () => undefined,
      } as unknown as ClientOptions);
      const status = await new Promise<number>((resolve) =>
        ws.once('unexpected-response', (_req, res) => resolve(res.statusCode ?? 0)),
      );
      t.equal(status, 403);
      ws.on('error', () => {}); // terminating a refused socket reports that it never opened
      ws.terminate();
    },
  );
});

async function handshakeFailures(adminPort: number): Promise<number> {
  const stats = (await (await request(`http://127.0.0.1:${adminPort}/stats`)).body.json()) as {
    handshakeFailures: Record<string, number>;
  };
  return Object.values(stats.handshakeFailures).reduce((a, b) => a + b, 0);
}

t.test(
  '/stats says what the sidecar process holds: RSS, live heap, heap limit and Buffers outside the heap',
  async (t) => {
    const { sidecar } = await ordersBehindSidecar(t, '');
    const stats = (await (
      await request(`http://127.0.0.1:${sidecar.adminPort}/stats`)
    ).body.json()) as {
      process: { rssMb: number; heapUsedMb: number; heapLimitMb: number; externalMb: number };
    };
    t.ok(stats.process.rssMb > 0);
    t.ok(stats.process.heapUsedMb > 0 && stats.process.heapUsedMb < stats.process.heapLimitMb);
    t.type(stats.process.externalMb, 'number', 'and the Buffers outside the heap');
  },
);
