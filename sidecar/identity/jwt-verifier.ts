import {
  decodeProtectedHeader,
  importJWK,
  type JWK,
  type JWTPayload,
  errors as joseErrors,
  jwtVerify,
} from 'jose';
import type { JwksCache } from './jwks.ts';

/**
 * One JWT provider of a policy, compiled once per snapshot: everything a
 * token is checked against. The algorithms are the provider's, never the
 * token's: a token naming `none`, or HS256 over an RSA public key, is
 * refused before any key is touched.
 */
export interface JwtProviderConfig {
  readonly issuer: string;
  /** The token's `aud` must name one of these; none configured: `aud` is not checked. */
  readonly audiences?: readonly string[];
  readonly algorithms: readonly string[];
  readonly keys: Pick<JwksCache, 'keyFor' | 'holds' | 'version' | 'fresh'>;
  /** Accepted difference between clocks for exp/nbf/iat, seconds (default 60). */
  readonly clockSkewSeconds?: number;
  /** When set, the header's `typ` must be this (say `at+jwt`), so an ID token cannot pass as an access token. */
  readonly typ?: string;
  /** Claims a token must carry, beyond `exp` which every token must. */
  readonly requiredClaims?: readonly string[];
}

/** Why a token was refused: the RFC 6750 error a 401 names, and a description for it and the log. */
export interface TokenRefusal {
  readonly ok: false;
  /** invalid_token: the token fails verification; temporarily_unavailable: no keys were ever fetched (503). */
  readonly error: 'invalid_token' | 'temporarily_unavailable';
  readonly description: string;
}

export type TokenResult = { readonly ok: true; readonly claims: JWTPayload } | TokenRefusal;

/** Tokens longer than this are refused before any parsing (RFC 6750 gives no bound; 8 KiB is Envoy's header budget for one). */
export const MAX_TOKEN_BYTES = 8 * 1024;

const refuse = (description: string): TokenRefusal => ({
  ok: false,
  error: 'invalid_token',
  description,
});

/**
 * Verifies bearer tokens for one provider. A verified token is remembered
 * until its `exp` (bounded, oldest evicted first), keyed by the token
 * itself, so a hot token costs one Map lookup and is answered synchronously;
 * only a token not seen before waits (a signature check, perhaps a key
 * fetch). Only tokens the provider signed get in, so the bound (4,096 of at
 * most 8 KiB) is what a legitimate fleet of callers can fill.
 */
export class JwtVerifier {
  readonly #config: JwtProviderConfig;
  readonly #now: () => number;
  readonly #maxCached: number;
  readonly #verified = new Map<
    string,
    { result: TokenResult; expiresAtMs: number; jwk: JWK; keysVersion: number }
  >();
  readonly #imported = new Map<string, Promise<CryptoKey | Uint8Array>>();

  constructor(config: JwtProviderConfig, options: { now?: () => number; maxCached?: number } = {}) {
    this.#config = config;
    this.#now = options.now ?? Date.now;
    this.#maxCached = options.maxCached ?? 4_096;
  }

  verify(token: string): TokenResult | Promise<TokenResult> {
    if (token.length > MAX_TOKEN_BYTES)
      return refuse(`the token is longer than ${MAX_TOKEN_BYTES} bytes`);
    return this.cached(token) ?? this.#verify(token);
  }

  /** The result for a token verified before and still good, without waiting; undefined otherwise. */
  cached(token: string): TokenResult | undefined {
    const cached = this.#verified.get(token);
    if (!cached) return undefined;
    const keys = this.#config.keys;
    // Keys past the stale bound verify nothing, cached or not: verified again, refused.
    if (!keys.fresh()) return undefined;
    // The key set changed since: a token whose key was rotated out is verified again (and fails).
    if (cached.keysVersion !== keys.version) {
      if (keys.holds(cached.jwk)) cached.keysVersion = keys.version;
      else cached.expiresAtMs = 0;
    }
    if (this.#now() < cached.expiresAtMs) return cached.result;
    this.#verified.delete(token);
    return undefined;
  }

  #verify(token: string): TokenResult | Promise<TokenResult> {
    let header: ReturnType<typeof decodeProtectedHeader>;
    try {
      header = decodeProtectedHeader(token);
    } catch {
      return refuse('the token is not a JWS compact serialization');
    }
    const { algorithms } = this.#config;
    if (typeof header.alg !== 'string' || !algorithms.includes(header.alg)) {
      return refuse(
        `the token's algorithm ${JSON.stringify(header.alg)} is not one of ${algorithms.join(', ')}`,
      );
    }
    // jku, x5u and an embedded jwk are never followed: keys come from the provider's set only.
    const lookup = this.#config.keys.keyFor(
      typeof header.kid === 'string' ? header.kid : undefined,
    );
    return lookup instanceof Promise
      ? lookup.then((found) => this.#check(token, header.alg!, found))
      : this.#check(token, header.alg, lookup);
  }

  async #check(
    token: string,
    alg: string,
    found: Awaited<ReturnType<JwtProviderConfig['keys']['keyFor']>>,
  ): Promise<TokenResult> {
    if (!found.ok) {
      if (found.reason === 'unavailable') {
        return {
          ok: false,
          error: 'temporarily_unavailable',
          description: 'the identity provider has not been reachable to fetch its keys',
        };
      }
      return refuse(
        found.reason === 'stale'
          ? "the identity provider's keys are too old to trust"
          : "the token's key is not in the identity provider's key set",
      );
    }
    const config = this.#config;
    try {
      const { payload } = await jwtVerify(token, await this.#key(found.jwk, alg), {
        issuer: config.issuer,
        ...(config.audiences?.length ? { audience: [...config.audiences] } : {}),
        algorithms: [alg],
        clockTolerance: config.clockSkewSeconds ?? 60,
        currentDate: new Date(this.#now()),
        requiredClaims: ['exp', ...(config.requiredClaims ?? [])],
        ...(config.typ ? { typ: config.typ } : {}),
      });
      this.#remember(token, payload, found.jwk);
      return { ok: true, claims: payload };
    } catch (error) {
      return refuse(describe(error));
    }
  }

  /** Imports a JWK once per (key, algorithm); a key unusable with the algorithm fails verification. */
  #key(jwk: JWK, alg: string): Promise<CryptoKey | Uint8Array> {
    const id = `${jwk.kid ?? ''}|${alg}|${jwk.x ?? jwk.n ?? ''}`;
    let key = this.#imported.get(id);
    if (!key) {
      key = importJWK({ ...jwk, alg }, alg);
      // A failed import is not cached: the next token retries (the set may have changed).
      key.catch(() => this.#imported.delete(id));
      this.#imported.set(id, key);
    }
    return key;
  }

  #remember(token: string, claims: JWTPayload, jwk: JWK): void {
    if (this.#verified.size >= this.#maxCached) {
      this.#verified.delete(this.#verified.keys().next().value as string);
    }
    // requiredClaims guarantees exp.
    this.#verified.set(token, {
      result: Object.freeze({ ok: true, claims: Object.freeze(claims) }),
      expiresAtMs: claims.exp! * 1000,
      jwk,
      keysVersion: this.#config.keys.version,
    });
  }
}

function describe(error: unknown): string {
  if (error instanceof joseErrors.JWTExpired) return 'the token has expired';
  if (error instanceof joseErrors.JWTClaimValidationFailed) {
    return `the token's ${error.claim} claim is not acceptable (${error.reason})`;
  }
  if (error instanceof joseErrors.JWSSignatureVerificationFailed)
    return "the token's signature is not valid";
  if (error instanceof joseErrors.JOSENotSupported || error instanceof joseErrors.JWSInvalid) {
    return `the token is not acceptable: ${(error as Error).message}`;
  }
  return `the token could not be verified: ${(error as Error).message}`;
}
