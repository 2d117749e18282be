import { generateKeyPairSync, sign } from 'node:crypto';

/**
 * The bench's JWT provider: a P-256 key made when the bench starts, its
 * public half written into orders' policy inline (no JWKS endpoint on the
 * path), and one token signed with it that lives a day, longer than any
 * run. Every request carries that token, so the sidecar verifies it once
 * and then finds it in its cache: the steady state of a caller reusing its
 * access token.
 */
const { publicKey, privateKey } = generateKeyPairSync('ec', { namedCurve: 'P-256' });

export const BENCH_ISSUER = 'https://bench.postern.test';
export const BENCH_SCOPE = 'orders.read';

export const BENCH_JWKS = Object.freeze({
  keys: [{ ...publicKey.export({ format: 'jwk' }), kid: 'bench', alg: 'ES256', use: 'sig' }],
});

const b64url = (value: unknown) => Buffer.from(JSON.stringify(value)).toString('base64url');
const input = `${b64url({ alg: 'ES256', kid: 'bench', typ: 'at+jwt' })}.${b64url({
  iss: BENCH_ISSUER,
  aud: 'orders',
  sub: 'bench-user',
  scope: BENCH_SCOPE,
  exp: Math.floor(Date.now() / 1000) + 86_400,
})}`;

const signature = sign('sha256', Buffer.from(input), {
  key: privateKey,
  dsaEncoding: 'ieee-p1363',
}).toString('base64url');

/** Headers of every request of a run, to every target alike (the same bytes on every path). */
export const BENCH_HEADERS = Object.freeze({ authorization: `Bearer ${input}.${signature}` });
