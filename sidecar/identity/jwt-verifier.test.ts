import { createHmac, KeyObject, sign as signRaw } from 'node:crypto';
import { exportJWK, exportSPKI, generateKeyPair, type JWK, SignJWT } from 'jose';
import t, { type Test } from 'tap';
import type { KeyLookup } from './jwks.ts';
import { JwtVerifier, MAX_TOKEN_BYTES, type TokenResult } from './jwt-verifier.ts';

const ISSUER = 'https://idp.example.com';
const NOW_S = 1_800_000_000;
const b64 = (value: unknown) => Buffer.from(JSON.stringify(value)).toString('base64url');

async function keyPair(alg: 'ES256' | 'RS256', kid: string) {
  const { publicKey, privateKey } = await generateKeyPair(alg, { extractable: true });
  const jwk: JWK = { ...(await exportJWK(publicKey)), kid, alg };
  return { publicKey, privateKey, jwk };
}

/** The provider's key set as the verifier sees it (JwksCache has its own tests over real sockets). */
function keySet(jwks: JWK[], reason?: 'unavailable' | 'stale') {
  return {
    version: 0,
    fresh: () => reason === undefined,
    holds: (jwk: JWK) => jwks.includes(jwk),
    keyFor(kid: string | undefined): KeyLookup {
      if (reason) return { ok: false, reason };
      const jwk =
        jwks.find((k) => k.kid === kid) ??
        (kid === undefined && jwks.length === 1 ? jwks[0] : undefined);
      return jwk ? { ok: true, jwk } : { ok: false, reason: 'unknown-kid' };
    },
  };
}

t.test('JWT verification', async (t) => {
  const es = await keyPair('ES256', 'es');
  const rs = await keyPair('RS256', 'rs');
  let nowMs = NOW_S * 1000;
  const verifier = (overrides: Partial<ConstructorParameters<typeof JwtVerifier>[0]> = {}) =>
    new JwtVerifier(
      {
        issuer: ISSUER,
        audiences: ['orders'],
        algorithms: ['ES256', 'RS256'],
        keys: keySet([es.jwk, rs.jwk]),
        ...overrides,
      },
      { now: () => nowMs },
    );
  const sign = (
    claims: Record<string, unknown> = {},
    header: Record<string, unknown> = {},
    key = es.privateKey,
    alg = 'ES256',
    kid = 'es',
  ) =>
    new SignJWT({
      sub: 'user-1',
      scope: 'orders.read',
      iss: ISSUER,
      aud: 'orders',
      iat: NOW_S - 10,
      exp: NOW_S + 300,
      ...claims,
    })
      .setProtectedHeader({ alg, kid, ...header })
      .sign(key);
  const refused = async (t: Test, result: TokenResult | Promise<TokenResult>, pattern: RegExp) => {
    const r = await result;
    t.equal(r.ok, false);
    if (!r.ok) t.match(r.description, pattern);
  };

  await t.test(
    'a valid token gives its claims; the second time from the cache, synchronously',
    async (t) => {
      const v = verifier();
      const token = await sign();
      const first = await v.verify(token);
      t.match(first, { ok: true, claims: { sub: 'user-1', scope: 'orders.read' } });
      const second = v.verify(token);
      t.notOk(second instanceof Promise, 'a verified token is a hash lookup');
      t.match(second, { ok: true, claims: { sub: 'user-1' } });
      t.match(await v.verify(await sign({}, {}, rs.privateKey, 'RS256', 'rs')), { ok: true });
    },
  );

  await t.test('alg none is refused', async (t) => {
    const token = `${b64({ alg: 'none' })}.${b64({ iss: ISSUER, aud: 'orders', exp: NOW_S + 60 })}.`;
    await refused(t, verifier().verify(token), /algorithm "none" is not one of/);
  });

  await t.test('HS256 signed with the RSA public key is refused', async (t) => {
    const pem = await exportSPKI(rs.publicKey);
    const input = `${b64({ alg: 'HS256', kid: 'rs' })}.${b64({ iss: ISSUER, aud: 'orders', exp: NOW_S + 60 })}`;
    const token = `${input}.${createHmac('sha256', pem).update(input).digest('base64url')}`;
    await refused(t, verifier().verify(token), /algorithm "HS256"/);
    await refused(
      t,
      verifier({ algorithms: ['RS256', 'HS256'] }).verify(token),
      /not acceptable|could not be verified|signature/,
    );
  });

  await t.test('time claims: expired, not yet valid, no exp at all', async (t) => {
    await refused(t, verifier().verify(await sign({ exp: NOW_S - 120 })), /expired/);
    await refused(t, verifier().verify(await sign({ nbf: NOW_S + 600 })), /nbf/);
    const noExp = await new SignJWT({ sub: 'x' })
      .setProtectedHeader({ alg: 'ES256', kid: 'es' })
      .setIssuer(ISSUER)
      .setAudience('orders')
      .sign(es.privateKey);
    await refused(t, verifier().verify(noExp), /exp/);
    t.match(
      await verifier().verify(await sign({ exp: NOW_S - 30 })),
      { ok: true },
      'within the clock skew',
    );
  });

  await t.test('audience and issuer', async (t) => {
    await refused(t, verifier().verify(await sign({ aud: 'payments' })), /aud/);
    const noAud = await new SignJWT({ sub: 'x' })
      .setProtectedHeader({ alg: 'ES256', kid: 'es' })
      .setIssuer(ISSUER)
      .setExpirationTime(NOW_S + 60)
      .sign(es.privateKey);
    await refused(t, verifier().verify(noAud), /aud/);
    await refused(t, verifier().verify(await sign({ iss: 'https://evil.example' })), /iss/);
  });

  await t.test('an ID token where an access token is required', async (t) => {
    const v = verifier({ typ: 'at+jwt' });
    await refused(t, v.verify(await sign({}, { typ: 'JWT' })), /typ/);
    t.match(await v.verify(await sign({}, { typ: 'at+jwt' })), { ok: true });
  });

  await t.test('keys named by the token itself (jku, x5u, jwk) are never used', async (t) => {
    const attacker = await keyPair('ES256', 'es');
    const token = await sign(
      {},
      { jku: 'https://evil.example/jwks', x5u: 'https://evil.example/cert', jwk: attacker.jwk },
      attacker.privateKey,
    );
    await refused(t, verifier().verify(token), /signature/);
  });

  await t.test('unknown and path-like kids, an unknown crit, an oversized token', async (t) => {
    // Signed by hand: jose will not sign a header with an extension it does not know.
    const input = `${b64({ alg: 'ES256', kid: 'es', crit: ['urn:unknown'], 'urn:unknown': 1 })}.${b64({ iss: ISSUER, aud: 'orders', exp: NOW_S + 60 })}`;
    const signature = signRaw('sha256', Buffer.from(input), {
      key: KeyObject.from(es.privateKey as CryptoKey),
      dsaEncoding: 'ieee-p1363',
    }).toString('base64url');
    const critical = `${input}.${signature}`;
    await refused(
      t,
      verifier().verify(await sign({}, {}, es.privateKey, 'ES256', 'nope')),
      /not in the identity provider's key set/,
    );
    await refused(
      t,
      verifier().verify(await sign({}, {}, es.privateKey, 'ES256', '../../etc/passwd')),
      /not in the identity provider's key set/,
    );
    await refused(t, verifier().verify(critical), /crit|not acceptable|could not/);
    await refused(t, verifier().verify('a'.repeat(MAX_TOKEN_BYTES + 1)), /longer than/);
    await refused(t, verifier().verify('not-a-jwt'), /not a JWS/);
  });

  await t.test('no keys ever fetched is 503-worthy; stale keys are a refusal', async (t) => {
    t.match(await verifier({ keys: keySet([], 'unavailable') }).verify(await sign()), {
      ok: false,
      error: 'temporarily_unavailable',
    });
    t.match(await verifier({ keys: keySet([], 'stale') }).verify(await sign()), {
      ok: false,
      error: 'invalid_token',
      description: /too old/,
    });
  });

  await t.test('a cached token stops being accepted when it expires', async (t) => {
    const v = verifier({ clockSkewSeconds: 0 });
    const token = await sign();
    t.match(await v.verify(token), { ok: true });
    nowMs = (NOW_S + 301) * 1000;
    await refused(t, v.verify(token), /expired/);
    nowMs = NOW_S * 1000;
  });
});

t.test(
  'a cached token is verified again when its key set goes stale or drops its key, and refused',
  async (t) => {
    const es = await keyPair('ES256', 'es');
    let jwks = [es.jwk];
    let fresh = true;
    const keys = {
      version: 0,
      fresh: () => fresh,
      holds: (jwk: JWK) => jwks.includes(jwk),
      keyFor: (kid: string | undefined): KeyLookup => {
        if (!fresh) return { ok: false, reason: 'stale' };
        const jwk = jwks.find((k) => k.kid === kid);
        return jwk ? { ok: true, jwk } : { ok: false, reason: 'unknown-kid' };
      },
    };
    const v = new JwtVerifier(
      { issuer: ISSUER, algorithms: ['ES256'], keys },
      { now: () => NOW_S * 1000 },
    );
    const token = await new SignJWT({ iss: ISSUER, exp: NOW_S + 300 })
      .setProtectedHeader({ alg: 'ES256', kid: 'es' })
      .sign(es.privateKey);
    t.match(await v.verify(token), { ok: true });
    keys.version++; // a refetch that kept the key
    t.match(v.verify(token), { ok: true }, 'still a cache hit');
    fresh = false; // the provider unreachable past the stale bound
    t.match(
      await v.verify(token),
      { ok: false, description: /too old/ },
      'no cache hit on stale keys',
    );
    fresh = true;
    t.match(await v.verify(token), { ok: true });
    jwks = [];
    keys.version++; // a refetch without it
    t.match(await v.verify(token), {
      ok: false,
      description: /not in the identity provider's key set/,
    });
  },
);
