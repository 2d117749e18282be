import { createHash, X509Certificate } from 'node:crypto';
import { once } from 'node:events';
import { createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import { exportJWK, generateKeyPair, SignJWT } from 'jose';
import t from 'tap';
import { request } from 'undici';
import { freePort } from '../../cli/processes.ts';
import { clientCredentials, ordersBehindSidecar } from '../helpers.ts';

const TESTER = 'spiffe://cluster.local/ns/default/sa/tester';
const ISSUER = 'https://idp.test';
const DOWN_ISSUER = 'https://idp-down.test';

t.test('JWTs on the inbound path, against a real key set on loopback', async (t) => {
  const { publicKey, privateKey } = await generateKeyPair('ES256', { extractable: true });
  const jwk = { ...(await exportJWK(publicKey)), kid: 'k1', alg: 'ES256' };
  let jwksRequests = 0;
  const idp = createServer((_req, res) => {
    jwksRequests++;
    res.end(JSON.stringify({ keys: [jwk] }));
  });
  idp.listen(0, '127.0.0.1');
  await once(idp, 'listening');
  t.teardown(() => {
    idp.closeAllConnections();
    idp.close();
  });
  const jwksUri = `http://127.0.0.1:${(idp.address() as AddressInfo).port}/jwks`;
  // Nothing listens here: a provider whose keys were never fetched.
  const downUri = `http://127.0.0.1:${await freePort()}/jwks`;
  const {
    mesh,
    app,
    sidecar,
    agent,
    credentials: testerCredentials,
  } = await ordersBehindSidecar(
    t,
    `
apiVersion: postern.dev/v1alpha1
kind: RoutePolicy
metadata: { name: orders-api, namespace: shop }
spec:
  selector: { matchLabels: { app: orders } }
  jwt:
    - { issuer: ${ISSUER}, jwksUri: "${jwksUri}", audiences: [orders] }
    - { issuer: ${DOWN_ISSUER}, jwksUri: "${downUri}" }
  routes:
    - name: orders
      match: { path: { prefix: /orders } }
      allow:
        - { principals: ["${TESTER}"], jwt: { claims: { scope: orders.read } } }
    - name: pay
      match: { path: { prefix: /pay } }
      allow:
        - { principals: ["${TESTER}"], jwt: { certificateBound: true } }
    - name: public
      match: { path: { prefix: /public } }
      allow:
        - { principals: ["${TESTER}"] }
`,
    TESTER,
  );
  const base = `https://127.0.0.1:${sidecar.inboundPort}`;
  const now = Math.floor(Date.now() / 1000);
  const token = (claims: Record<string, unknown> = {}, header: Record<string, unknown> = {}) =>
    new SignJWT({
      iss: ISSUER,
      aud: 'orders',
      sub: 'user-1',
      scope: 'orders.read',
      exp: now + 300,
      ...claims,
    })
      .setProtectedHeader({ alg: 'ES256', kid: 'k1', ...header })
      .sign(privateKey);
  const call = async (path: string, authorization?: string) => {
    const res = await request(`${base}${path}`, {
      dispatcher: agent,
      ...(authorization ? { headers: { authorization } } : {}),
    });
    return {
      status: res.statusCode,
      headers: res.headers,
      body: (await res.body.json()) as Record<string, unknown>,
    };
  };

  await t.test('a valid token whose claims the route asks for reaches the app', async (t) => {
    const before = app.requests.length;
    t.equal((await call('/orders', `Bearer ${await token()}`)).status, 200);
    t.equal(
      (await call('/orders', `bearer ${await token({ scope: 'profile orders.read' })}`)).status,
      200,
    );
    t.equal(app.requests.length, before + 2);
  });

  await t.test('a valid token without the claims gets 403', async (t) => {
    const res = await call('/orders', `Bearer ${await token({ scope: 'orders.write' })}`);
    t.equal(res.status, 403);
    t.match(res.body, { error: { code: 'POSTERN_DENIED', reason: 'no-allow-rule-matched' } });
  });

  await t.test(
    'no token where the route asks for claims gets 401 and the Bearer challenge',
    async (t) => {
      const res = await call('/orders');
      t.equal(res.status, 401);
      t.equal(res.headers['www-authenticate'], 'Bearer realm="postern"');
      t.equal(
        (await call('/public')).status,
        200,
        'a route that asks for no claims needs no token',
      );
    },
  );

  await t.test(
    'a token that fails verification gets 401 invalid_token, whatever the route',
    async (t) => {
      const before = app.requests.length;
      const b64 = (v: unknown) => Buffer.from(JSON.stringify(v)).toString('base64url');
      const cases = {
        expired: await token({ exp: now - 600 }),
        'wrong audience': await token({ aud: 'payments' }),
        'alg none': `${b64({ alg: 'none' })}.${b64({ iss: ISSUER, aud: 'orders', exp: now + 60 })}.`,
        'unknown issuer': await token({ iss: 'https://evil.test' }),
        'unknown kid': await token({}, { kid: 'k2' }),
        garbage: 'not.a.jwt',
      };
      for (const [name, bad] of Object.entries(cases)) {
        const res = await call('/public', `Bearer ${bad}`);
        t.equal(res.status, 401, name);
        t.match(
          res.headers['www-authenticate'],
          /^Bearer realm="postern", error="invalid_token", error_description="/,
          name,
        );
      }
      const oversized = await call('/public', `Bearer ${'a'.repeat(9000)}`);
      t.equal(oversized.status, 401, 'an oversized token');
      t.equal(app.requests.length, before, 'the app saw none of them');
    },
  );

  await t.test(
    'a second Authorization header beside a verified token is refused, so the app cannot read an unverified one',
    async (t) => {
      const before = app.requests.length;
      const res = await request(`${base}/public`, {
        dispatcher: agent,
        headers: [
          'authorization',
          `Bearer ${await token()}`,
          'authorization',
          `Bearer ${await token({ sub: 'admin' }, { kid: 'forged' })}`,
        ],
      });
      t.equal(res.statusCode, 400);
      t.match(await res.body.json(), { error: { code: 'POSTERN_DUPLICATE_AUTHORIZATION' } });
      t.equal(app.requests.length, before);
    },
  );

  await t.test("other Authorization schemes are the app's and pass untouched", async (t) => {
    const res = await call('/public', 'Basic dXNlcjpwYXNz');
    t.equal(res.status, 200);
    t.match(res.body, { headers: { authorization: 'Basic dXNlcjpwYXNz' } });
  });

  await t.test(
    'a provider whose keys were never fetched makes its tokens 503, not 401',
    async (t) => {
      const res = await call(
        '/public',
        `Bearer ${await token({ iss: DOWN_ISSUER, aud: undefined })}`,
      );
      t.equal(res.status, 503);
      t.match(res.body, { error: { code: 'POSTERN_JWKS_UNAVAILABLE' } });
    },
  );

  await t.test(
    'a certificate-bound token works from the certificate it names, and from no other (RFC 8705)',
    async (t) => {
      const thumbprint = (pem: string) =>
        createHash('sha256').update(new X509Certificate(pem).raw).digest('base64url');
      const mine = await token({ cnf: { 'x5t#S256': thumbprint(testerCredentials.cert) } });
      t.equal((await call('/pay', `Bearer ${mine}`)).status, 200);
      // Another workload's certificate (the same identity, another key): the token was stolen.
      const other = await clientCredentials(mesh.controlPlane.ca, TESTER);
      const stolen = await token({ cnf: { 'x5t#S256': thumbprint(other.cert) } });
      const replayed = await call('/pay', `Bearer ${stolen}`);
      t.equal(replayed.status, 401);
      t.match(replayed.headers['www-authenticate'], /error="invalid_token"/);
      t.match(replayed.body, { error: { code: 'POSTERN_TOKEN_NOT_BOUND' } });
      t.equal((await call('/pay', `Bearer ${await token()}`)).status, 401, 'an unbound token');
      t.equal((await call('/pay')).status, 401, 'no token');
    },
  );

  t.equal(
    jwksRequests,
    1,
    'one fetch: an unknown kid inside the cooldown after it fetches nothing',
  );
});
