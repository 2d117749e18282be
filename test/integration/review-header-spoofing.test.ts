/**
 * Security review, header spoofing: findings 4 (identity headers spelled with
 * underscores), 8 (Connection removing headers after route matching) and 9
 * (client-address headers passed through as the client wrote them). Each
 * test is named after the defect it pins down; the ones after each finding's
 * first are what a reviewer tries next.
 */
import { spawnSync } from 'node:child_process';
import type { IncomingHttpHeaders } from 'node:http';
import { createServer as createHttpsServer } from 'node:https';
import type { AddressInfo } from 'node:net';
import { connect as connectTls } from 'node:tls';
import t, { type Test } from 'tap';
import { request } from 'undici';
import { type ClientOptions, WebSocket, WebSocketServer } from 'ws';
import { CertificateAuthority } from '../../certs/authority.ts';
import { CHILD_NODE_ARGS, POSTERN_BIN } from '../../cli/processes.ts';
import type { UnderscoreAction } from '../../sidecar/http/headers.ts';
import type { Sidecar } from '../../sidecar/sidecar.ts';
import {
  clientCredentials,
  type EchoApp,
  mtlsAgent,
  type PemCredentials,
  startEchoApp,
  startOutboundListener,
  startTestMesh,
  TESTER,
  untilReady,
} from '../helpers.ts';
import { type Echoed, echoedBody, mtlsExchange, STILL_OPEN, tcpExchange } from '../raw-http.ts';

const ORDERS = 'spiffe://cluster.local/ns/shop/sa/orders';

/**
 * /orders open to any principal except with `x-tenant: a`; /reports only
 * with `x-tenant: public` (no other route takes it, and the default denies).
 */
const POLICY = `
apiVersion: postern.dev/v1alpha1
kind: RoutePolicy
metadata: { name: orders-api, namespace: shop }
spec:
  selector: { matchLabels: { app: orders } }
  routes:
    - name: orders
      match: { path: { prefix: /orders } }
      allow:
        - principals: ["*"]
    - name: tenant-a
      match: { path: { prefix: /orders }, headers: [{ name: X-Tenant, exact: a }] }
      deny:
        - principals: ["*"]
    - name: public-reports
      match: { path: { prefix: /reports }, headers: [{ name: x-tenant, exact: public }] }
      allow:
        - principals: ["*"]
    - name: live
      match: { path: { exact: /live } }
      allow:
        - principals: ["*"]
`;

/** The echo app as "orders" behind a ready sidecar with `--headers-with-underscores underscores`. */
async function ordersWith(
  t: Test,
  underscores?: UnderscoreAction,
): Promise<{
  sidecar: Sidecar;
  app: EchoApp;
  credentials: PemCredentials;
  upgrades: IncomingHttpHeaders[];
}> {
  const mesh = await startTestMesh(t, POLICY);
  const app = await startEchoApp(t);
  // WebSocket upgrades: the app answers with the headers it received.
  const upgrades: IncomingHttpHeaders[] = [];
  const wss = new WebSocketServer({ server: app.server });
  wss.on('connection', (ws, req) => {
    upgrades.push(req.headers);
    ws.send(JSON.stringify(req.headers));
  });
  t.teardown(() => wss.close());
  const sidecar = await mesh.startSidecar({
    workload: 'orders',
    namespace: 'shop',
    appPort: app.port,
    headersWithUnderscores: underscores,
  });
  await untilReady(sidecar.adminPort);
  const credentials = await clientCredentials(mesh.controlPlane.ca, TESTER);
  return { sidecar, app, credentials, upgrades };
}

/** Header names as a CGI server (Rack, WSGI, PHP) keys them: HTTP_X_POSTERN_PRINCIPAL. */
function cgiNames(headers: IncomingHttpHeaders): string[] {
  return Object.keys(headers).map((name) => `HTTP_${name.toUpperCase().replaceAll('-', '_')}`);
}

/** A peer "orders" sidecar stand-in for outbound tests: mTLS, echoes the headers it received. */
async function startEchoPeer(
  t: Test,
  ca: CertificateAuthority,
): Promise<{ port: number; upgrades: IncomingHttpHeaders[] }> {
  const upgrades: IncomingHttpHeaders[] = [];
  const peer = createHttpsServer(
    { ...(await clientCredentials(ca, ORDERS)), requestCert: true },
    (req, res) => {
      res.writeHead(200, { 'content-type': 'application/json' });
      res.end(JSON.stringify({ url: req.url, headers: req.headers, body: '' }));
    },
  );
  peer.on('upgrade', (req, socket) => {
    upgrades.push(req.headers);
    socket.end('HTTP/1.1 404 Not Found\r\ncontent-length: 0\r\nconnection: close\r\n\r\n');
  });
  await new Promise<void>((resolve) => peer.listen(0, '127.0.0.1', resolve));
  t.teardown(() => {
    peer.closeAllConnections();
    return new Promise((resolve) => peer.close(resolve));
  });
  return { port: (peer.address() as AddressInfo).port, upgrades };
}

/** An outbound listener whose registry sends "orders" to an echoing peer. */
async function outboundToEchoPeer(t: Test) {
  const ca = await CertificateAuthority.create('cluster.local');
  const peer = await startEchoPeer(t, ca);
  const { port } = await startOutboundListener(t, ca, [
    { service: 'orders', namespace: 'shop', address: `127.0.0.1:${peer.port}`, spiffeId: ORDERS },
  ]);
  return { port, peer };
}

const SPOOFED_WITH_UNDERSCORES = [
  'x_postern_principal',
  'spiffe://cluster.local/ns/shop/sa/admin',
  'X_Forwarded_Client_Cert',
  'By=x;URI=spiffe://cluster.local/ns/shop/sa/admin',
  'x_postern-audit',
  'forged',
  'x_forwarded_for',
  '6.6.6.6',
  'x_real_ip',
  '6.6.6.6',
  'x_forwarded_proto',
  'http',
];

t.test('finding 4: headers spelled with underscores, default allow', async (t) => {
  const { sidecar, credentials, upgrades } = await ordersWith(t);
  const agent = mtlsAgent(credentials);
  t.teardown(() => agent.close());
  const base = `https://127.0.0.1:${sidecar.inboundPort}`;
  const get = async (path: string, headers: string[]) => {
    const res = await request(`${base}${path}`, { dispatcher: agent, headers });
    return { status: res.statusCode, text: await res.body.text() };
  };

  await t.test(
    'identity headers spelled with underscores (x_postern_principal, x_forwarded_client_cert) reached the app',
    async (t) => {
      const res = await get('/orders', [...SPOOFED_WITH_UNDERSCORES, 'x_custom_flag', 'kept']);
      t.equal(res.status, 200);
      const { headers } = JSON.parse(res.text) as Echoed;
      const cgi = cgiNames(headers);
      for (const owned of [
        'HTTP_X_POSTERN_PRINCIPAL',
        'HTTP_X_FORWARDED_CLIENT_CERT',
        'HTTP_X_FORWARDED_FOR',
        'HTTP_X_REAL_IP',
        'HTTP_X_FORWARDED_PROTO',
      ]) {
        t.equal(cgi.filter((name) => name === owned).length, 1, `one ${owned}, the sidecar's`);
      }
      t.notOk(cgi.includes('HTTP_X_POSTERN_AUDIT'), 'no audit header on an allowed request');
      t.equal(headers['x-postern-principal'], TESTER);
      t.equal(headers['x-forwarded-for'], '127.0.0.1');
      t.equal(headers['x-forwarded-proto'], 'https');
      t.equal(headers.x_custom_flag, 'kept', 'other underscore headers pass (allow)');
    },
  );

  await t.test(
    'identity headers spelled with underscores reached the app through a WebSocket upgrade',
    async (t) => {
      const ws = new WebSocket(`wss://127.0.0.1:${sidecar.inboundPort}/live`, {
        ...credentials,
        checkServerIdentity: () => undefined,
        headers: Object.fromEntries(
          SPOOFED_WITH_UNDERSCORES.flatMap((v, i, a) => (i % 2 ? [] : [[v, a[i + 1]]])),
        ),
      } as unknown as ClientOptions);
      const received = await new Promise<string>((resolve, reject) => {
        ws.once('message', (m) => resolve(String(m)));
        ws.once('error', reject);
      });
      ws.close();
      const headers = JSON.parse(received) as IncomingHttpHeaders;
      const cgi = cgiNames(headers);
      t.equal(cgi.filter((name) => name === 'HTTP_X_POSTERN_PRINCIPAL').length, 1);
      t.equal(cgi.filter((name) => name === 'HTTP_X_FORWARDED_CLIENT_CERT').length, 1);
      t.equal(cgi.filter((name) => name === 'HTTP_X_REAL_IP').length, 1);
      t.equal(headers['x-postern-principal'], TESTER);
      t.equal(upgrades.length, 1);
    },
  );

  await t.test(
    'a matched header with an underscore twin (x-tenant plus x_tenant) was not refused as repeated',
    async (t) => {
      // A CGI app reads HTTP_X_TENANT from either copy: the route might have been chosen on the other.
      const res = await get('/orders', ['x-tenant', 'b', 'x_tenant', 'a']);
      t.equal(res.status, 400);
      t.match(res.text, /POSTERN_REPEATED_HEADER/);
    },
  );

  await t.test(
    'reviewer next: a matched header spelled only with underscores escapes the route that matches on it',
    async (t) => {
      // Policy sees no x-tenant (route "orders" allows); a CGI app would read HTTP_X_TENANT=a (denied tenant).
      const res = await get('/orders', ['x_tenant', 'a']);
      t.equal(res.status, 400);
      t.match(res.text, /POSTERN_UNDERSCORE_HEADER/);
      t.equal((await get('/orders', ['x-tenant', 'b', 'x_other', 'a'])).status, 200, 'others pass');
    },
  );

  await t.test(
    'reviewer next: a Proxy header (httpoxy) reached the app as HTTP_PROXY',
    async (t) => {
      const res = await get('/orders', ['proxy', 'http://attacker.example:3128']);
      t.equal(res.status, 200);
      t.notOk(cgiNames((JSON.parse(res.text) as Echoed).headers).includes('HTTP_PROXY'));
    },
  );
});

t.test(
  'finding 4: --headers-with-underscores reject answered with the underscore header forwarded',
  async (t) => {
    const { sidecar, app, credentials } = await ordersWith(t, 'reject');
    const before = app.requests.length;
    // No "connection: close" from the client: the server must close by itself.
    const reply = await mtlsExchange(
      sidecar.inboundPort,
      credentials,
      'GET /orders HTTP/1.1\r\nhost: orders\r\nx_custom_flag: 1\r\n\r\n',
    );
    t.match(reply, /^HTTP\/1\.1 400 /);
    t.match(reply, /POSTERN_UNDERSCORE_HEADER/);
    t.match(reply, /x_custom_flag/, 'the reply names the header');
    t.match(reply, /\r\nconnection: close\r\n/i);
    t.notMatch(reply, STILL_OPEN, 'and closed the connection');
    t.equal(app.requests.length, before, 'nothing reached the app');
    const upgrade = await mtlsExchange(
      sidecar.inboundPort,
      credentials,
      'GET /live HTTP/1.1\r\nhost: orders\r\nconnection: upgrade\r\nupgrade: websocket\r\nsec-websocket-version: 13\r\nsec-websocket-key: dGhlIHNhbXBsZSBub25jZQ==\r\nx_custom_flag: 1\r\n\r\n',
    );
    t.match(upgrade, /^HTTP\/1\.1 400 POSTERN_UNDERSCORE_HEADER/, 'the upgrade path too');
    const plain = await mtlsExchange(
      sidecar.inboundPort,
      credentials,
      'GET /orders HTTP/1.1\r\nhost: orders\r\nx-custom-flag: 1\r\nconnection: close\r\n\r\n',
    );
    t.match(plain, /^HTTP\/1\.1 200 /, 'hyphens are fine');
    const owned = await mtlsExchange(
      sidecar.inboundPort,
      credentials,
      'GET /orders HTTP/1.1\r\nhost: orders\r\nx_postern_principal: forged\r\n\r\n',
    );
    t.match(owned, /^HTTP\/1\.1 400 [\s\S]*POSTERN_UNDERSCORE_HEADER/, 'a sidecar-owned twin too');
  },
);

t.test('finding 4: --headers-with-underscores drop forwarded the underscore header', async (t) => {
  const { sidecar, credentials } = await ordersWith(t, 'drop');
  const agent = mtlsAgent(credentials);
  t.teardown(() => agent.close());
  const res = await request(`https://127.0.0.1:${sidecar.inboundPort}/orders`, {
    dispatcher: agent,
    headers: ['x_custom_flag', '1', 'x-custom-flag', '2', 'x_tenant', 'a'],
  });
  t.equal(res.statusCode, 200, 'a dropped twin of a matched header leaves nothing ambiguous');
  const { headers } = (await res.body.json()) as Echoed;
  t.notOk('x_custom_flag' in headers);
  t.notOk('x_tenant' in headers);
  t.equal(headers['x-custom-flag'], '2');
});

t.test(
  'finding 4: --headers-with-underscores accepted any value instead of allow, drop or reject',
  async (t) => {
    const result = spawnSync(process.execPath, [...CHILD_NODE_ARGS, POSTERN_BIN, 'sidecar'], {
      encoding: 'utf8',
      env: {
        ...process.env,
        POSTERN_CONTROL_PLANE: 'https://127.0.0.1:1',
        POSTERN_CA_FILE: '/nonexistent',
        POSTERN_BOOTSTRAP_TOKEN_FILE: '/nonexistent',
        POSTERN_APP_PORT: '1',
        POSTERN_WORKLOAD: 'orders',
        POSTERN_NAMESPACE: 'shop',
        POSTERN_SERVICE_ACCOUNT: 'orders',
        POSTERN_HEADERS_WITH_UNDERSCORES: 'strip',
      },
    });
    t.equal(result.status, 2, result.stderr);
    t.match(
      result.stderr,
      /--headers-with-underscores must be allow, drop or reject; found "strip"/,
    );
  },
);

t.test('finding 4: headers spelled with underscores on the outbound path', async (t) => {
  const { port, peer } = await outboundToEchoPeer(t);
  await t.test('identity headers spelled with underscores were sent on to the peer', async (t) => {
    const res = await request(`http://127.0.0.1:${port}/orders`, {
      headers: ['host', 'orders', ...SPOOFED_WITH_UNDERSCORES, 'x_custom_flag', 'kept'],
    });
    t.equal(res.statusCode, 200);
    const { headers } = (await res.body.json()) as Echoed;
    const cgi = cgiNames(headers);
    t.notOk(cgi.includes('HTTP_X_POSTERN_PRINCIPAL'));
    t.notOk(cgi.includes('HTTP_X_FORWARDED_CLIENT_CERT'));
    t.notOk(cgi.includes('HTTP_X_POSTERN_AUDIT'));
    t.notOk(cgi.includes('HTTP_X_REAL_IP'));
    t.equal(headers.x_custom_flag, 'kept');
  });
  await t.test('and through an outbound WebSocket upgrade', async (t) => {
    await tcpExchange(
      port,
      'GET /live HTTP/1.1\r\nhost: orders\r\nconnection: upgrade\r\nupgrade: websocket\r\nsec-websocket-version: 13\r\nsec-websocket-key: dGhlIHNhbXBsZSBub25jZQ==\r\nx_postern_principal: forged\r\nx-forwarded-for: 10.9.9.9\r\n\r\n',
    );
    t.equal(peer.upgrades.length, 1);
    const headers = peer.upgrades[0]!;
    t.notOk('x_postern_principal' in headers);
    t.equal(headers['x-forwarded-for'], '10.9.9.9', "the app's own XFF passes outbound");
  });
});

t.test('finding 8: Connection and hop-by-hop removal before route matching', async (t) => {
  const { sidecar, app, credentials, upgrades } = await ordersWith(t);
  const send = (text: string) => mtlsExchange(sidecar.inboundPort, credentials, text);

  await t.test(
    'a header named in Connection was removed after route matching had used it',
    async (t) => {
      const chosen = await send(
        'GET /reports HTTP/1.1\r\nhost: orders\r\nx-tenant: public\r\nconnection: close\r\n\r\n',
      );
      t.match(chosen, /^HTTP\/1\.1 200 /, 'x-tenant: public chooses the public route');
      t.equal(echoedBody(chosen).headers['x-tenant'], 'public');
      const before = app.requests.length;
      const hidden = await send(
        'GET /reports HTTP/1.1\r\nhost: orders\r\nx-tenant: public\r\nconnection: close, x-tenant\r\n\r\n',
      );
      t.match(hidden, /^HTTP\/1\.1 403 /, 'policy sees what the app would see: no x-tenant');
      t.equal(app.requests.length, before);
    },
  );

  await t.test(
    'reviewer next: a request whose Connection names the header of a denying route is judged without it',
    async (t) => {
      // x-tenant: a is denied; removed by Connection, neither policy nor the app sees it: a request for no tenant.
      const reply = await send(
        'GET /orders HTTP/1.1\r\nhost: orders\r\nx-tenant: a\r\nconnection: close, X-Tenant\r\n\r\n',
      );
      t.match(reply, /^HTTP\/1\.1 200 /);
      t.notOk('x-tenant' in echoedBody(reply).headers);
    },
  );

  await t.test('Connection naming host or content-length was obeyed', async (t) => {
    for (const named of ['host', 'Content-Length']) {
      const before = app.requests.length;
      const reply = await send(
        `POST /orders HTTP/1.1\r\nhost: orders\r\ncontent-length: 2\r\nconnection: keep-alive, ${named}\r\n\r\nhi`,
      );
      t.match(reply, /^HTTP\/1\.1 400 [\s\S]*POSTERN_BAD_CONNECTION_HEADER/, named);
      t.match(reply, /\r\nconnection: close\r\n/i);
      t.notMatch(reply, STILL_OPEN, 'and the connection is closed');
      t.equal(app.requests.length, before);
    }
  });

  await t.test(
    'reviewer next: Connection naming transfer-encoding or an identity header must not lose the body or the identity',
    async (t) => {
      const reply = await send(
        'POST /orders HTTP/1.1\r\nhost: orders\r\ntransfer-encoding: chunked\r\nx-postern-principal: forged\r\nconnection: close, transfer-encoding, x-postern-principal\r\n\r\n5\r\nhello\r\n0\r\n\r\n',
      );
      t.match(reply, /^HTTP\/1\.1 200 /);
      const echoed = echoedBody(reply);
      t.equal(echoed.body, 'hello');
      t.equal(echoed.headers['x-postern-principal'], TESTER);
    },
  );

  await t.test(
    'Connection: upgrade kept working, and other names it lists are dropped on the upgrade path',
    async (t) => {
      const reply = await new Promise<string>((resolve, reject) => {
        let received = '';
        const socket = connectTls({
          host: '127.0.0.1',
          port: sidecar.inboundPort,
          ...credentials,
          checkServerIdentity: () => undefined,
        });
        socket.on('secureConnect', () =>
          socket.write(
            'GET /live HTTP/1.1\r\nhost: orders\r\nconnection: Upgrade, x-tenant\r\nupgrade: websocket\r\nsec-websocket-version: 13\r\nsec-websocket-key: dGhlIHNhbXBsZSBub25jZQ==\r\nx-tenant: a\r\n\r\n',
          ),
        );
        socket.on('data', (chunk) => {
          received += chunk;
          if (received.includes('\r\n\r\n')) socket.destroy();
        });
        socket.on('error', reject);
        socket.on('close', () => resolve(received));
      });
      t.match(reply, /^HTTP\/1\.1 101 /);
      t.notOk('x-tenant' in upgrades.at(-1)!);
      t.equal(upgrades.at(-1)!.upgrade, 'websocket');
    },
  );

  await t.test('Connection naming host was obeyed on the outbound path', async (t) => {
    const { port } = await outboundToEchoPeer(t);
    const reply = await tcpExchange(
      port,
      'GET /orders HTTP/1.1\r\nhost: orders\r\nconnection: host\r\n\r\n',
    );
    t.match(reply, /^HTTP\/1\.1 400 [\s\S]*POSTERN_BAD_CONNECTION_HEADER/);
  });
});

t.test('finding 9: client-address headers', async (t) => {
  const { sidecar, credentials } = await ordersWith(t);
  const send = (text: string) => mtlsExchange(sidecar.inboundPort, credentials, text);

  await t.test(
    'X-Forwarded-For, Forwarded and X-Real-IP passed through as the client wrote them',
    async (t) => {
      const reply = await send(
        [
          'GET /orders HTTP/1.1',
          'host: orders',
          'X-Forwarded-For: 6.6.6.6',
          'x-forwarded-for: 7.7.7.7',
          'Forwarded: for=6.6.6.6;proto=http',
          'X-Real-IP: 6.6.6.6',
          'X-Real-IP: 7.7.7.7',
          'X-Forwarded-Host: shop.example',
          'X-Forwarded-Proto: http',
          'connection: close',
          '',
          '',
        ].join('\r\n'),
      );
      t.match(reply, /^HTTP\/1\.1 200 /);
      const { headers } = echoedBody(reply);
      t.equal(headers['x-forwarded-for'], '6.6.6.6, 7.7.7.7, 127.0.0.1', 'the peer is appended');
      t.equal(headers.forwarded, 'for=6.6.6.6;proto=http, for=127.0.0.1;proto=https');
      t.equal(headers['x-real-ip'], '127.0.0.1', "the client's copies are replaced");
      t.equal(headers['x-forwarded-host'], 'shop.example', 'kept as sent');
      t.equal(headers['x-forwarded-proto'], 'https');
    },
  );

  await t.test('a request with none of them gets the peer address alone', async (t) => {
    const { headers } = echoedBody(
      await send('GET /orders HTTP/1.1\r\nhost: orders\r\nconnection: close\r\n\r\n'),
    );
    t.equal(headers['x-forwarded-for'], '127.0.0.1');
    t.equal(headers.forwarded, 'for=127.0.0.1;proto=https');
    t.equal(headers['x-real-ip'], '127.0.0.1');
  });

  await t.test('the WebSocket upgrade path says the same', async (t) => {
    const ws = new WebSocket(`wss://127.0.0.1:${sidecar.inboundPort}/live`, {
      ...credentials,
      checkServerIdentity: () => undefined,
      headers: { 'x-forwarded-for': '6.6.6.6', 'x-real-ip': '6.6.6.6' },
    } as unknown as ClientOptions);
    const received = await new Promise<string>((resolve, reject) => {
      ws.once('message', (m) => resolve(String(m)));
      ws.once('error', reject);
    });
    ws.close();
    const headers = JSON.parse(received) as IncomingHttpHeaders;
    t.equal(headers['x-forwarded-for'], '6.6.6.6, 127.0.0.1');
    t.equal(headers['x-real-ip'], '127.0.0.1');
    t.equal(headers.forwarded, 'for=127.0.0.1;proto=https');
  });

  await t.test('outbound passes the app’s own values unchanged', async (t) => {
    const { port } = await outboundToEchoPeer(t);
    const res = await request(`http://127.0.0.1:${port}/orders`, {
      headers: [
        'host',
        'orders',
        'x-forwarded-for',
        '10.1.1.1',
        'x-real-ip',
        '10.1.1.1',
        'forwarded',
        'for=10.1.1.1',
      ],
    });
    const { headers } = (await res.body.json()) as Echoed;
    t.equal(headers['x-forwarded-for'], '10.1.1.1');
    t.equal(headers['x-real-ip'], '10.1.1.1');
    t.equal(headers.forwarded, 'for=10.1.1.1');
  });
});
