/**
 * JWT verification time, cached and uncached.
 *
 *   npm run bench:jwt
 *
 * Times the sidecar's JwtVerifier (the pure part of the authenticate-jwt
 * filter) against keys written inline, so no network is measured: a token
 * not seen before (decode, import the key once, check the signature and
 * claims) and a token verified before (the cache lookup a caller reusing
 * its access token costs), for ES256 and RS256. Median of the runs.
 */
import { exportJWK, generateKeyPair, SignJWT } from 'jose';
import { InlineKeySet } from '../sidecar/identity/inline-key-set.ts';
import { JwtVerifier } from '../sidecar/identity/jwt-verifier.ts';

const ISSUER = 'https://bench.postern.test';

export interface JwtVerifyTime {
  readonly alg: 'ES256' | 'RS256';
  /** Median over the runs of the mean time to verify a token not seen before, µs. */
  readonly uncachedUs: number;
  /** Median over the runs of the mean time to answer a token verified before, ns. */
  readonly cachedNs: number;
}

function median(values: number[]): number {
  const sorted = [...values].sort((a, b) => a - b);
  return sorted[Math.floor(sorted.length / 2)]!;
}

export async function measureJwtVerifyTime(
  alg: 'ES256' | 'RS256',
  runs = 5,
  tokensPerRun = 400,
  cachedIterations = 200_000,
): Promise<JwtVerifyTime> {
  const { publicKey, privateKey } = await generateKeyPair(alg, { extractable: true });
  const keys = new InlineKeySet({
    keys: [{ ...(await exportJWK(publicKey)), kid: 'k', alg, use: 'sig' }],
  });
  const exp = Math.floor(Date.now() / 1000) + 3600;
  const sign = (jti: string) =>
    new SignJWT({ iss: ISSUER, aud: 'orders', sub: 'bench', scope: 'orders.read', exp, jti })
      .setProtectedHeader({ alg, kid: 'k' })
      .sign(privateKey);
  const uncached: number[] = [];
  const cached: number[] = [];
  for (let run = 0; run < runs; run++) {
    // A fresh verifier per run: its cache empty, its key imported by a first token.
    const verifier = new JwtVerifier({
      issuer: ISSUER,
      audiences: ['orders'],
      algorithms: [alg],
      keys,
    });
    await verifier.verify(await sign('warm-up'));
    const tokens = await Promise.all(
      Array.from({ length: tokensPerRun }, (_, i) => sign(`${run}-${i}`)),
    );
    let start = process.hrtime.bigint();
    for (const token of tokens) {
      const result = await verifier.verify(token);
      if (!result.ok) throw new Error(`a good token was refused: ${result.description}`);
    }
    uncached.push(Number(process.hrtime.bigint() - start) / tokensPerRun / 1000);
    const hot = tokens[0]!;
    start = process.hrtime.bigint();
    for (let i = 0; i < cachedIterations; i++) {
      const result = verifier.verify(hot);
      if (result instanceof Promise || !result.ok)
        throw new Error('a verified token missed the cache');
    }
    cached.push(Number(process.hrtime.bigint() - start) / cachedIterations);
  }
  return { alg, uncachedUs: median(uncached), cachedNs: median(cached) };
}

if (import.meta.main) {
  console.log('alg     uncached (µs)   cached (ns)');
  for (const alg of ['ES256', 'RS256'] as const) {
    const { uncachedUs, cachedNs } = await measureJwtVerifyTime(alg);
    console.log(
      `${alg}   ${uncachedUs.toFixed(1).padStart(13)}   ${cachedNs.toFixed(0).padStart(11)}`,
    );
  }
}
