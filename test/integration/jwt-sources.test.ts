import { exportJWK, generateKeyPair, SignJWT } from 'jose';
import t from 'tap';
import { request } from 'undici';
import { ordersBehindSidecar, TESTER } from '../helpers.ts';

t.test(
  'where tokens come from, what the app receives of them, and keys written into the policy',
  async (t) => {
    const header = await generateKeyPair('ES256', { extractable: true });
    const cookie = await generateKeyPair('ES256', { extractable: true });
    const jwk = async (key: CryptoKey, kid: string) =>
      JSON.stringify({ ...(await exportJWK(key)), kid, alg: 'ES256' });
    // Both providers keep their keys in the policy (no JWKS endpoint anywhere).
    const { app, sidecar, agent } = await ordersBehindSidecar(
      t,
      `
apiVersion: postern.dev/v1alpha1
kind: RoutePolicy
metadata: { name: orders-api, namespace: shop }
spec:
  selector: { matchLabels: { app: orders } }
  jwt:
    - issuer: https://header.test
      jwks: { keys: [${await jwk(header.publicKey, 'h1')}] }
      fromHeaders: [{ name: X-Jwt-Assertion }, { name: Authorization, prefix: "Bearer " }]
      fromCookies: [auth]
      outputClaimToHeaders:
        - { header: x-user, claim: sub }
        - { header: x-tenant, claim: tenant }
        - { header: x-postern-groups, claim: groups }
    - issuer: https://cookie.test
      jwks: { keys: [${await jwk(cookie.publicKey, 'c1')}] }
      fromCookies: [session]
      forwardOriginalToken: true
      outputClaimToHeaders: [{ header: x-user, claim: sub }]
  routes:
    - name: orders
      match: { path: { prefix: /orders } }
      allow:
        - { principals: ["${TESTER}"], jwt: { claims: { sub: alice } } }
    - name: public
      match: { path: { prefix: /public } }
      allow:
        - { principals: ["${TESTER}"] }
`,
      TESTER,
    );
    const exp = Math.floor(Date.now() / 1000) + 300;
    const headerToken = (claims: Record<string, unknown> = {}) =>
      new SignJWT({ iss: 'https://header.test', sub: 'alice', exp, ...claims })
        .setProtectedHeader({ alg: 'ES256', kid: 'h1' })
        .sign(header.privateKey);
    const cookieToken = new SignJWT({ iss: 'https://cookie.test', sub: 'alice', exp })
      .setProtectedHeader({ alg: 'ES256', kid: 'c1' })
      .sign(cookie.privateKey);
    const call = async (path: string, headers: string[] = []) => {
      const res = await request(`https://127.0.0.1:${sidecar.inboundPort}${path}`, {
        dispatcher: agent,
        headers,
      });
      const body = (await res.body.json()) as {
        headers?: Record<string, string>;
        error?: { code: string };
      };
      return { status: res.statusCode, headers: res.headers, body };
    };

    await t.test(
      'a token from a named header is verified, removed, and its claims sent in the headers the policy names',
      async (t) => {
        const res = await call('/orders', [
          'x-jwt-assertion',
          await headerToken({ tenant: 'acme', groups: ['ops', 'dev'] }),
          // A client's copies of claim headers, under both spellings: never the app's.
          'x-user',
          'mallory',
          'x_user',
          'mallory',
          'x-tenant',
          'evil',
        ]);
        t.equal(res.status, 200);
        const seen = res.body.headers!;
        t.equal(seen['x-user'], 'alice');
        t.equal(seen['x-tenant'], 'acme');
        t.equal(seen['x-postern-groups'], 'ops,dev');
        t.notOk('x-jwt-assertion' in seen, 'the token is not forwarded');
        t.notOk('x_user' in seen);
      },
    );

    await t.test('the default Bearer header is one source among those named', async (t) => {
      const res = await call('/orders', ['authorization', `Bearer ${await headerToken()}`]);
      t.equal(res.status, 200);
      t.notOk('authorization' in res.body.headers!, 'removed once verified');
      t.notOk('x-tenant' in res.body.headers!, 'a claim the token lacks is not sent');
    });

    await t.test(
      'a token from a cookie is verified and, as its provider asks, forwarded',
      async (t) => {
        const res = await call('/orders', [
          'cookie',
          `theme=dark; session=${await cookieToken}`,
          'x-user',
          'mallory',
        ]);
        t.equal(res.status, 200);
        t.equal(res.body.headers!['x-user'], 'alice');
        t.match(res.body.headers!.cookie, /session=/);
      },
    );

    await t.test(
      'a token cookie not forwarded is taken out of Cookie, and the other cookies stay',
      async (t) => {
        const res = await call('/orders', [
          'cookie',
          `theme=dark; auth=${await headerToken()}`,
          'cookie',
          'lang=en',
        ]);
        t.equal(res.status, 200);
        t.equal(res.body.headers!.cookie, 'theme=dark; lang=en');
        const alone = await call('/orders', ['cookie', `auth=${await headerToken()}`]);
        t.notOk('cookie' in alone.body.headers!, 'no Cookie header left at all');
      },
    );

    await t.test("a client's claim headers are stripped even when it sends no token", async (t) => {
      const res = await call('/public', ['x-user', 'admin', 'x-postern-groups', 'admins']);
      t.equal(res.status, 200);
      t.notOk('x-user' in res.body.headers!);
      t.notOk('x-postern-groups' in res.body.headers!);
    });

    await t.test(
      'tokens in two places, or a token in a place its issuer does not use, are refused',
      async (t) => {
        const before = app.requests.length;
        const two = await call('/public', [
          'x-jwt-assertion',
          await headerToken(),
          'authorization',
          `Bearer ${await headerToken()}`,
        ]);
        t.equal(two.status, 400);
        t.match(two.headers['www-authenticate'], /error="invalid_request"/);
        t.match(two.body, { error: { code: 'POSTERN_AMBIGUOUS_TOKEN' } });
        const repeated = await call('/public', [
          'cookie',
          `session=${await cookieToken}; session=${await cookieToken}`,
        ]);
        t.equal(repeated.status, 400, 'one cookie sent twice');
        const misplaced = await call('/public', ['cookie', `session=${await headerToken()}`]);
        t.equal(misplaced.status, 401);
        t.match(misplaced.headers['www-authenticate'], /not accepted in the session cookie/);
        t.equal(app.requests.length, before);
      },
    );
  },
);
