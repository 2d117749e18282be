import { readFile, rename, writeFile } from 'node:fs/promises';
import { Agent as HttpsAgent, request as httpsRequest } from 'node:https';
import { join } from 'node:path';
import type { TLSSocket } from 'node:tls';
import { exportJWK, generateKeyPair, SignJWT } from 'jose';
import t from 'tap';
import { Agent } from 'undici';
import { hashApiKey } from '../../sidecar/gateway/consumers.ts';
import { adminConfig, adminMetrics, eventually, tempDir } from '../helpers.ts';
import { opensslCa, opensslLeaf } from '../openssl.ts';
import { startEdge } from './gateway-edge.ts';

const ROUTE_ALL = `
apiVersion: gateway.networking.k8s.io/v1
kind: HTTPRoute
metadata: { name: shop, namespace: shop, annotations: { postern.dev/max-request-bytes: 1Ki } }
spec:
  parentRefs: [{ name: edge }]
  hostnames: [shop.example.com]
  rules:
    - matches: [{ path: { type: PathPrefix, value: /slow } }]
      timeouts: { request: 2s, backendRequest: 300ms }
      backendRefs: [{ name: orders, port: 80 }]
    - matches: [{ path: { type: PathPrefix, value: /deadline } }]
      timeouts: { request: 400ms }
      backendRefs: [{ name: orders, port: 80 }]
    - filters:
        - type: CORS
          cors:
            allowOrigins: [https://app.example.com, "https://*.partner.example"]
            allowMethods: [GET, POST]
            allowHeaders: [authorization, x-api-key]
            exposeHeaders: [ratelimit]
            allowCredentials: true
            maxAge: 600
      backendRefs: [{ name: orders, port: 80 }]
`;

const STREAMING = `
apiVersion: gateway.networking.k8s.io/v1
kind: HTTPRoute
metadata: { name: streaming, namespace: shop, annotations: { postern.dev/idle-timeout: 300ms } }
spec:
  parentRefs: [{ name: edge }]
  hostnames: [shop.example.com]
  rules:
    - matches: [{ path: { type: PathPrefix, value: /stream } }]
      backendRefs: [{ name: orders, port: 80 }]
`;

const ISSUER = 'https://idp.example.com';

async function edgeWithSecurity(t: Parameters<typeof startEdge>[0]) {
  const idp = await generateKeyPair('ES256', { extractable: true });
  const jwk = { ...(await exportJWK(idp.publicKey)), kid: 'demo', alg: 'ES256' };
  const token = (sub: string, scope = 'orders.read') =>
    new SignJWT({ scope })
      .setProtectedHeader({ alg: 'ES256', kid: 'demo' })
      .setIssuer(ISSUER)
      .setAudience('shop')
      .setSubject(sub)
      .setIssuedAt()
      .setExpirationTime('5m')
      .sign(idp.privateKey);
  const policy = `
apiVersion: postern.dev/v1alpha1
kind: RoutePolicy
metadata: { name: edge, namespace: shop }
spec:
  selector: { matchLabels: { app: edge } }
  jwt:
    - issuer: ${ISSUER}
      audiences: [shop]
      jwks: { keys: [${JSON.stringify(jwk)}] }
  routes:
    - name: me
      match: { path: { prefix: /me } }
      allow: [{ jwt: { claims: { scope: orders.read } } }]
      rateLimit: { requests: 2, per: 1m, key: subject }
    - name: partner-api
      match: { path: { prefix: /api } }
      allow: [{ principals: ["consumer:acme", "consumer:globex"] }]
      rateLimit: { requests: 3, per: 1m, key: consumer }
    - name: partners
      match: { path: { prefix: /partner } }
      allow: [{ principals: ["cert:acme-partner"] }]
    - name: export
      match: { path: { prefix: /export } }
      allow: [{ principals: ["consumer:*"] }]
      exfiltration: { maxResponseBytes: { bytes: 2Ki, per: 1m }, action: block }
    - name: public
      match: { path: { prefix: /public } }
      allow: [{ sourceIPs: [0.0.0.0/0, "::/0"] }]
      rateLimit: { requests: 2, per: 1m, key: source-ip }
    - name: office
      match: { path: { prefix: /office } }
      allow: [{ sourceIPs: [203.0.113.0/24] }]
    - name: rest
      match: { path: { prefix: / } }
      allow: [{ principals: ["*"] }, { jwt: { claims: { scope: orders.read } } }]
`;
  const dir = await tempDir(t);
  const keysFile = join(dir, 'consumers.yaml');
  await writeFile(
    keysFile,
    `consumers:\n  - { name: acme, sha256: ${hashApiKey('acme-secret-key')} }\n`,
  );
  const partnerCa = await opensslCa(dir, 'partner-ca');
  const edge = await startEdge(t, {
    services: ['orders'],
    httpRoutes: `${ROUTE_ALL}\n---\n${STREAMING}`,
    edgePolicy: policy,
    gateway: {
      apiKeysFile: keysFile,
      clientCaFile: partnerCa.cert,
      trustedProxies: ['127.0.0.2'],
    },
  });
  return { edge, token, keysFile, partnerCa, dir };
}

t.test('edge security at the gateway', async (t) => {
  const { edge, token, keysFile, partnerCa, dir } = await edgeWithSecurity(t);
  const host = 'shop.example.com';

  t.test(
    'end-user JWTs: a valid token passes, none gets 401, and the limit counts by subject',
    async (t) => {
      const alice = await token('alice');
      const ok = await edge.call(host, '/me', { headers: { authorization: `Bearer ${alice}` } });
      t.equal(ok.status, 200);
      t.match(ok.headers.ratelimit, /;r=1;/, 'one request left');
      const none = await edge.call(host, '/me');
      t.equal(none.status, 401);
      t.equal(none.headers['www-authenticate'], 'Bearer realm="postern"');
      t.equal(
        (await edge.call(host, '/me', { headers: { authorization: `Bearer ${alice}` } })).status,
        200,
      );
      const over = await edge.call(host, '/me', { headers: { authorization: `Bearer ${alice}` } });
      t.equal(over.status, 429, 'alice over her limit');
      t.ok(Number(over.headers['retry-after']) > 0);
      const bob = await edge.call(host, '/me', {
        headers: { authorization: `Bearer ${await token('bob')}` },
      });
      t.equal(bob.status, 200, 'bob counts apart');
    },
  );

  t.test(
    'API keys: the consumer is the principal, limits count by consumer, the key never reaches the backend',
    async (t) => {
      const key = { 'x-api-key': 'acme-secret-key' };
      const first = await edge.call(host, '/api/orders', { headers: key });
      t.equal(first.status, 200);
      t.notOk('x-api-key' in edge.lastSeen('orders').headers, 'the key stays at the gateway');
      const unknown = await edge.call(host, '/api/orders', { headers: { 'x-api-key': 'guess' } });
      t.equal(unknown.status, 401);
      t.match(JSON.parse(unknown.body), { error: { code: 'POSTERN_API_KEY_INVALID' } });
      t.equal((await edge.call(host, '/api/orders')).status, 403, 'no key, no consumer: denied');
      t.equal((await edge.call(host, '/api/orders', { headers: key })).status, 200);
      t.equal((await edge.call(host, '/api/orders', { headers: key })).status, 200);
      t.equal(
        (await edge.call(host, '/api/orders', { headers: key })).status,
        429,
        'acme over its 3',
      );

      // A consumer added to the file (written elsewhere, renamed in: as kubectl and editors do) is known at once.
      const next = join(dir, 'consumers.next');
      await writeFile(
        next,
        `consumers:\n  - { name: acme, sha256: ${hashApiKey('acme-secret-key')} }\n  - { name: globex, sha256: ${hashApiKey('globex-key')} }\n`,
      );
      await rename(next, keysFile);
      await eventually(
        async () =>
          (await edge.call(host, '/api/orders', { headers: { 'x-api-key': 'globex-key' } }))
            .status === 200,
      );
      t.pass('globex, added to the file, is let in');
      // A broken edit keeps the consumers in force.
      await writeFile(keysFile, 'consumers: [{ name: acme, sha256: not-a-hash }]\n');
      await new Promise((resolve) => setTimeout(resolve, 400));
      t.equal(
        (await edge.call(host, '/api/orders', { headers: { 'x-api-key': 'globex-key' } })).status,
        200,
        'the last good consumers stay',
      );
    },
  );

  t.test(
    "a partner's client certificate names it in policy; one from another CA is refused",
    async (t) => {
      const ca = await readFile(edge.serverCa.cert, 'utf8');
      const partner = await opensslLeaf(dir, partnerCa, 'acme-partner', { client: true });
      const withCert = (files: { cert: string; key: string }) =>
        Promise.all([readFile(files.cert, 'utf8'), readFile(files.key, 'utf8')]).then(
          ([cert, key]) =>
            new Agent({
              connect: { ca, cert, key, servername: host, checkServerIdentity: () => undefined },
            }),
        );
      const agent = await withCert(partner);
      t.teardown(() => agent.close());
      t.equal(
        (await edge.call(host, '/partner/x', { agent })).status,
        200,
        'cert:acme-partner allowed',
      );
      t.equal((await edge.call(host, '/partner/x')).status, 403, 'without it: denied');
      const stranger = await opensslLeaf(dir, await opensslCa(dir, 'other-ca'), 'acme-partner', {
        client: true,
      });
      const strangerAgent = await withCert(stranger);
      t.teardown(() => strangerAgent.close());
      await t.rejects(
        edge.call(host, '/partner/x', { agent: strangerAgent }),
        'same CN, another CA: the connection is refused',
      );
    },
  );

  t.test(
    'CORS: preflights are answered at the gateway, allowed origins get their headers',
    async (t) => {
      const before = edge.apps.orders!.requests.length;
      const preflight = await edge.call(host, '/api/orders', {
        method: 'OPTIONS',
        headers: {
          origin: 'https://app.example.com',
          'access-control-request-method': 'POST',
          'access-control-request-headers': 'x-api-key',
        },
      });
      t.equal(preflight.status, 204, 'no key needed for a preflight');
      t.equal(preflight.headers['access-control-allow-origin'], 'https://app.example.com');
      t.equal(preflight.headers['access-control-allow-methods'], 'GET, POST');
      t.equal(preflight.headers['access-control-allow-headers'], 'authorization, x-api-key');
      t.equal(preflight.headers['access-control-allow-credentials'], 'true');
      t.equal(preflight.headers['access-control-max-age'], '600');
      const wildcard = await edge.call(host, '/api/orders', {
        method: 'OPTIONS',
        headers: { origin: 'https://eu.partner.example', 'access-control-request-method': 'GET' },
      });
      t.equal(wildcard.headers['access-control-allow-origin'], 'https://eu.partner.example');
      const stranger = await edge.call(host, '/api/orders', {
        method: 'OPTIONS',
        headers: { origin: 'https://evil.example', 'access-control-request-method': 'GET' },
      });
      t.notOk('access-control-allow-origin' in stranger.headers, 'another origin is not allowed');
      t.equal(edge.apps.orders!.requests.length, before, 'no preflight reached the backend');

      const actual = await edge.call(host, '/api/orders', {
        headers: { origin: 'https://app.example.com', 'x-api-key': 'globex-key' },
      });
      t.equal(actual.status, 200);
      t.equal(actual.headers['access-control-allow-origin'], 'https://app.example.com');
      t.equal(actual.headers['access-control-expose-headers'], 'ratelimit');
      const refused = await edge.call(host, '/api/orders', {
        headers: { origin: 'https://app.example.com' },
      });
      t.equal(refused.status, 403);
      t.equal(
        refused.headers['access-control-allow-origin'],
        'https://app.example.com',
        'a refusal carries them too, so the browser can read it',
      );
    },
  );

  t.test(
    "forwarding headers are the gateway's: a client cannot spoof them, a trusted proxy can state them",
    async (t) => {
      const spoof = {
        'x-forwarded-for': '203.0.113.9',
        forwarded: 'for=203.0.113.9;proto=http',
        'x-real-ip': '203.0.113.9',
        'x-forwarded-host': 'evil.example',
        'x-forwarded-proto': 'http',
        'x-forwarded-prefix': '/evil',
        'x-original-url': '/admin',
        'x-rewrite-url': '/admin',
        'true-client-ip': '203.0.113.9',
        authorization: `Bearer ${await token('carol')}`,
      };
      t.equal(
        (await edge.call(host, '/office', { headers: spoof })).status,
        403,
        'a claimed office address is not one',
      );
      await edge.call(host, '/anything', { headers: spoof });
      const seen = edge.lastSeen('orders').headers;
      t.equal(
        seen['x-forwarded-for'],
        '127.0.0.1, 127.0.0.1',
        'the client, then the gateway (added by the backend sidecar)',
      );
      t.notMatch(seen.forwarded, /203\.0\.113\.9/);
      t.notMatch(seen['x-forwarded-for'], /203\.0\.113\.9/);
      t.equal(seen['x-forwarded-host'], host, 'the Host the client asked for');
      t.equal(seen['x-forwarded-proto'], 'https');
      for (const name of [
        'x-forwarded-prefix',
        'x-original-url',
        'x-rewrite-url',
        'true-client-ip',
      ])
        t.notOk(name in seen, `${name} from the client is dropped`);

      // 127.0.0.2 is a trusted proxy: what it says of the client stands, for headers and policy alike.
      const ca = await readFile(edge.serverCa.cert, 'utf8');
      const proxy = new Agent({
        localAddress: '127.0.0.2',
        connect: { ca, servername: host, checkServerIdentity: () => undefined },
      });
      t.teardown(() => proxy.close());
      const viaProxy = { 'x-forwarded-for': '203.0.113.9', authorization: spoof.authorization };
      t.equal(
        (await edge.call(host, '/office', { headers: viaProxy, agent: proxy })).status,
        200,
        'the office, via the proxy',
      );
      t.equal(
        edge.lastSeen('orders').headers['x-forwarded-for'],
        '203.0.113.9, 127.0.0.2, 127.0.0.1',
        'the client the proxy named, the proxy, the gateway',
      );
    },
  );

  t.test('an exfiltration cap counts per consumer at the edge', async (t) => {
    const acme = { 'x-api-key': 'acme-secret-key' };
    t.equal((await edge.call(host, '/export?size=1500', { headers: acme })).status, 200);
    const over = await edge.call(host, '/export?size=1500', { headers: acme });
    t.equal(over.status, 403, "past acme's 2 KiB a minute");
    t.match(JSON.parse(over.body), { error: { code: 'POSTERN_EXFILTRATION_CAP' } });
    t.equal(
      (await edge.call(host, '/export?size=1500', { headers: { 'x-api-key': 'globex-key' } }))
        .status,
      200,
      'globex has its own',
    );
  });

  t.test("the gateway's endpoints and their metrics are on its admin port", async (t) => {
    const config = await adminConfig(edge.adminPort);
    t.match(config.endpoints, [{ service: 'shop/orders', state: 'active' }]);
    t.match(
      await adminMetrics(edge.adminPort),
      /postern_upstream_requests_total\{service="shop\/orders",endpoint="127\.0\.0\.1:\d+",outcome="ok"\} \d+/,
    );
    t.match(
      await adminMetrics(edge.adminPort),
      /postern_requests_total\{direction="gateway",decision="allow",code="200"\} \d+/,
    );
  });

  t.test('limits by client address count the client a trusted proxy names', async (t) => {
    const ca = await readFile(edge.serverCa.cert, 'utf8');
    const proxy = new Agent({
      localAddress: '127.0.0.2',
      connect: { ca, servername: host, checkServerIdentity: () => undefined },
    });
    t.teardown(() => proxy.close());
    const via = (client: string) =>
      edge.call(host, '/public', { headers: { 'x-forwarded-for': client }, agent: proxy });
    t.equal((await via('198.51.100.1')).status, 200);
    t.equal((await via('198.51.100.1')).status, 200);
    t.equal((await via('198.51.100.1')).status, 429, 'the third from one client');
    t.equal(
      (await via('198.51.100.2')).status,
      200,
      'another client behind the same proxy counts apart',
    );
    // A new address claimed each time: counted by its socket all the same.
    const spoofed = (claimed: string) =>
      edge.call(host, '/public', { headers: { 'x-forwarded-for': claimed } });
    t.equal((await spoofed('198.51.100.3')).status, 200);
    t.equal((await spoofed('198.51.100.4')).status, 200);
    t.equal(
      (await spoofed('198.51.100.5')).status,
      429,
      'an untrusted client counts as its socket, whatever it claims',
    );
  });

  t.test('request bodies over the route limit get 413, declared or chunked', async (t) => {
    const before = edge.apps.orders!.requests.length;
    const declared = await edge.call(host, '/upload', {
      method: 'POST',
      body: Buffer.alloc(2048, 'x'),
      headers: { authorization: `Bearer ${await token('dave')}` },
    });
    t.equal(declared.status, 413);
    t.equal(edge.apps.orders!.requests.length, before, 'never sent on');
    const small = await edge.call(host, '/upload', {
      method: 'POST',
      body: 'small',
      headers: { authorization: `Bearer ${await token('dave')}` },
    });
    t.equal(small.status, 200);
    const ca = await readFile(edge.serverCa.cert, 'utf8');
    const authorization = `Bearer ${await token('dave')}`;
    const sent = edge.apps.orders!.requests.length;
    const chunked = await new Promise<number>((resolve, reject) => {
      const req = httpsRequest(
        {
          host: '127.0.0.1',
          port: edge.port,
          method: 'POST',
          path: '/upload',
          servername: host,
          ca,
          headers: { host, authorization, 'transfer-encoding': 'chunked' },
        },
        (res) => {
          res.resume();
          resolve(res.statusCode ?? 0);
        },
      );
      req.on('error', reject);
      // Four 512-byte chunks, no Content-Length: cut past the first two.
      for (let i = 0; i < 4; i++) req.write(Buffer.alloc(512, 'y'));
      req.end();
    });
    t.equal(chunked, 413, 'a chunked body is cut at the limit');
    const reached = edge.apps.orders!.requests.slice(sent);
    t.ok(
      reached.every((req) => !req.complete),
      'the backend got at most a body that stops short, never the whole',
    );
  });

  t.test("a backend slower than the rule's backendRequest timeout gets 504", async (t) => {
    const slow = await edge.call(host, '/slow?delay=1500', {
      headers: { authorization: `Bearer ${await token('erin')}` },
    });
    t.equal(slow.status, 504);
    t.match(JSON.parse(slow.body), { error: { code: 'POSTERN_UPSTREAM_TIMEOUT' } });
    const late = await edge.call(host, '/deadline?delay=1500', {
      headers: { authorization: `Bearer ${await token('erin')}` },
    });
    t.equal(late.status, 504, "past the rule's request timeout");
  });

  t.test("a response body silent for longer than the route's idle timeout is cut", async (t) => {
    const authorization = `Bearer ${await token('frank')}`;
    const brief = await edge.call(host, '/stream?size=4000&stall=50', {
      headers: { authorization },
    });
    t.equal(brief.body.length, 4000, 'a short pause is fine');
    await t.rejects(
      edge.call(host, '/stream?size=4000&stall=1500', { headers: { authorization } }),
      'a long one ends the response before it is whole',
    );
  });

  t.test(
    'the server certificate is reloaded when its files change, and open connections carry on',
    async (t) => {
      const ca = await readFile(edge.serverCa.cert, 'utf8');
      const serialOf = (agentOptions: { agent?: InstanceType<typeof HttpsAgent> } = {}) =>
        new Promise<string>((resolve, reject) => {
          const req = httpsRequest(
            {
              host: '127.0.0.1',
              port: edge.port,
              path: '/anything',
              servername: host,
              ca,
              headers: { host, authorization: 'Bearer x' },
              ...agentOptions,
            },
            (res) => {
              res.resume();
              resolve((res.socket as TLSSocket).getPeerCertificate().serialNumber);
            },
          );
          req.on('error', reject);
          req.end();
        });
      const kept = new HttpsAgent({ keepAlive: true, maxSockets: 1 });
      t.teardown(() => kept.destroy());
      const before = await serialOf({ agent: kept });
      const renewed = await opensslLeaf(dir, edge.serverCa, 'shop.example.com', {
        server: { dns: ['shop.example.com'], ips: ['127.0.0.1'] },
      });
      // The key first, then the certificate, as an operator's tooling would swap them.
      await writeFile(edge.serverCert.key, await readFile(renewed.key));
      await writeFile(edge.serverCert.cert, await readFile(renewed.cert));
      await eventually(async () => (await serialOf()) !== before);
      t.pass('a new connection gets the renewed certificate');
      t.equal(
        await serialOf({ agent: kept }),
        before,
        'the open keep-alive connection still works, on its handshake',
      );
    },
  );
});
