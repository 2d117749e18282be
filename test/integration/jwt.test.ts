import { createHash, createHmac, KeyObject, sign as signRaw, X509Certificate } from 'node:crypto';
import { once } from 'node:events';
import { createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import { exportJWK, exportSPKI, generateKeyPair, type JWK, SignJWT } from 'jose';
import t from 'tap';
import { request } from 'undici';
import { freePort } from '../../cli/processes.ts';
import { clientCredentials, ordersBehindSidecar, TESTER } from '../helpers.ts';

const ISSUER = 'https://idp.test';
const DOWN_ISSUER = 'https://idp-down.test';
const AT_ISSUER = 'https://idp-at.test';
const GARBAGE_ISSUER = 'https://idp-garbage.test';
const SLOW_ISSUER = 'https://idp-slow.test';
const b64 = (value: unknown) => Buffer.from(JSON.stringify(value)).toString('base64url');

t.test('JWTs on the inbound path, against a real key set on loopback', async (t) => {
  const es = await generateKeyPair('ES256', { extractable: true });
  const rs = await generateKeyPair('RS256', { extractable: true });
  const k1 = { ...(await exportJWK(es.publicKey)), kid: 'k1', alg: 'ES256' };
  const rsa = { ...(await exportJWK(rs.publicKey)), kid: 'rsa', alg: 'RS256' };
  // The identity provider: /jwks is the key set (rotated by the test), /garbage never was one, /slow never answers.
  let published: JWK[] = [k1, rsa];
  let jwksUp = true;
  const fetches = { jwks: 0, garbage: 0, slow: 0, attacker: 0 };
  const idp = createServer((req, res) => {
    const path = (req.url ?? '').slice(1) as keyof typeof fetches;
    fetches[path]++;
    if (path === 'slow') return;
    if (path === 'garbage') return void res.end('<html>not a key set</html>');
    if (path === 'attacker') return void res.end(JSON.stringify({ keys: [attackerJwk] }));
    if (!jwksUp) return void res.writeHead(500).end();
    res.end(JSON.stringify({ keys: published }));
  });
  idp.listen(0, '127.0.0.1');
  await once(idp, 'listening');
  t.teardown(() => {
    idp.closeAllConnections();
    idp.close();
  });
  const idpBase = `http://127.0.0.1:${(idp.address() as AddressInfo).port}`;
  const attacker = await generateKeyPair('ES256', { extractable: true });
  const attackerJwk = { ...(await exportJWK(attacker.publicKey)), kid: 'k1', alg: 'ES256' };
  // Nothing listens here: a provider whose keys were never fetched.
  const downUri = `http://127.0.0.1:${await freePort()}/jwks`;
  // The sidecar's clock: the tests move it past key-set cooldowns and stale bounds.
  let skewMs = 0;
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
    - { issuer: ${ISSUER}, jwksUri: "${idpBase}/jwks", audiences: [orders] }
    - { issuer: ${AT_ISSUER}, jwksUri: "${idpBase}/jwks", audiences: [orders], typ: at+jwt }
    - { issuer: ${DOWN_ISSUER}, jwksUri: "${downUri}" }
    - { issuer: ${GARBAGE_ISSUER}, jwksUri: "${idpBase}/garbage" }
    - { issuer: ${SLOW_ISSUER}, jwksUri: "${idpBase}/slow" }
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
    { now: () => Date.now() + skewMs },
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
      .sign(es.privateKey);
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
      const claims = { iss: ISSUER, aud: 'orders', exp: now + 60 };
      const rsaPem = await exportSPKI(rs.publicKey);
      const hsInput = `${b64({ alg: 'HS256', kid: 'rsa' })}.${b64(claims)}`;
      // Signed by hand: jose will not sign a header with an extension it does not know.
      const critInput = `${b64({ alg: 'ES256', kid: 'k1', crit: ['urn:x'], 'urn:x': 1 })}.${b64(claims)}`;
      const critSignature = signRaw('sha256', Buffer.from(critInput), {
        key: KeyObject.from(es.privateKey as CryptoKey),
        dsaEncoding: 'ieee-p1363',
      }).toString('base64url');
      const byAttacker = (header: Record<string, unknown>) =>
        new SignJWT(claims)
          .setProtectedHeader({ alg: 'ES256', kid: 'k1', ...header })
          .sign(attacker.privateKey);
      const cases = {
        expired: await token({ exp: now - 600 }),
        'nbf in the future': await token({ nbf: now + 600 }),
        'no exp': await token({ exp: undefined }),
        'wrong audience': await token({ aud: 'payments' }),
        'no audience': await token({ aud: undefined }),
        'alg none': `${b64({ alg: 'none' })}.${b64(claims)}.`,
        'HS256 signed with the RSA public key': `${hsInput}.${createHmac('sha256', rsaPem).update(hsInput).digest('base64url')}`,
        'unknown issuer': await token({ iss: 'https://evil.test' }),
        'unknown kid': await token({}, { kid: 'k2' }),
        'path-like kid': await token({}, { kid: '../../../etc/passwd' }),
        'unknown crit': `${critInput}.${critSignature}`,
        "jku naming the attacker's keys": await byAttacker({ jku: `${idpBase}/attacker` }),
        "x5u naming the attacker's certificate": await byAttacker({ x5u: `${idpBase}/attacker` }),
        "the attacker's key embedded as jwk": await byAttacker({ jwk: attackerJwk }),
        'an ID token where an access token is required': await token(
          { iss: AT_ISSUER },
          { typ: 'JWT' },
        ),
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
      t.equal(fetches.attacker, 0, 'keys named by a token are never fetched');
      const access = await token({ iss: AT_ISSUER }, { typ: 'at+jwt' });
      t.equal((await call('/public', `Bearer ${access}`)).status, 200, 'the access token passes');
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
      t.match(res.headers['www-authenticate'], /error="invalid_request"/);
      t.match(await res.body.json(), { error: { code: 'POSTERN_AMBIGUOUS_TOKEN' } });
      t.equal(app.requests.length, before);
    },
  );

  await t.test("other Authorization schemes are the app's and pass untouched", async (t) => {
    const res = await call('/public', 'Basic dXNlcjpwYXNz');
    t.equal(res.status, 200);
    t.match(res.body, { headers: { authorization: 'Basic dXNlcjpwYXNz' } });
  });

  await t.test(
    'a key set down, answering garbage or too slow before any fetch makes its tokens 503, not 401',
    async (t) => {
      for (const iss of [DOWN_ISSUER, GARBAGE_ISSUER, SLOW_ISSUER]) {
        const res = await call('/public', `Bearer ${await token({ iss, aud: undefined })}`);
        t.equal(res.status, 503, iss);
        t.match(res.body, { error: { code: 'POSTERN_JWKS_UNAVAILABLE' } }, iss);
      }
      t.same([fetches.garbage, fetches.slow], [1, 1]);
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

  await t.test('a flood of unknown kids is not a flood of key-set fetches', async (t) => {
    t.equal(fetches.jwks, 1, 'one fetch so far: unknown kids inside the cooldown fetched nothing');
    const flood = await Promise.all(
      Array.from({ length: 50 }, async (_, i) =>
        call('/public', `Bearer ${await token({}, { kid: `random-${i}` })}`),
      ),
    );
    t.ok(flood.every((res) => res.status === 401));
    t.equal(fetches.jwks, 1);
  });

  await t.test(
    'a key rotated at the identity provider: the new key works and the old one stops, without a restart',
    async (t) => {
      const old = await token();
      t.equal((await call('/public', `Bearer ${old}`)).status, 200);
      const next = await generateKeyPair('ES256', { extractable: true });
      published = [{ ...(await exportJWK(next.publicKey)), kid: 'k2', alg: 'ES256' }, rsa];
      skewMs += 31_000; // past the unknown-kid cooldown
      const fresh = await new SignJWT({ iss: ISSUER, aud: 'orders', exp: now + 300 })
        .setProtectedHeader({ alg: 'ES256', kid: 'k2' })
        .sign(next.privateKey);
      t.equal((await call('/public', `Bearer ${fresh}`)).status, 200, 'k2, found by a refetch');
      t.equal(fetches.jwks, 2);
      const stale = await call('/public', `Bearer ${old}`);
      t.equal(stale.status, 401, 'k1, verified before, is refused once the provider dropped it');
    },
  );

  await t.test(
    'with the key set down, held keys work for the stale bound, then tokens fail closed with 401',
    async (t) => {
      const fresh = await new SignJWT({ iss: ISSUER, aud: 'orders', exp: now + 7200 })
        .setProtectedHeader({ alg: 'RS256', kid: 'rsa' })
        .sign(rs.privateKey);
      jwksUp = false;
      skewMs += 10 * 60_000; // past the refresh interval: a background refresh fails
      t.equal((await call('/public', `Bearer ${fresh}`)).status, 200);
      skewMs += 60 * 60_000; // past the stale bound
      const res = await call('/public', `Bearer ${fresh}`);
      t.equal(res.status, 401);
      t.match(res.headers['www-authenticate'], /too old/);
    },
  );
});
