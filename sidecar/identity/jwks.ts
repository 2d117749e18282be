import type { JWK } from 'jose';
import { type Dispatcher, request } from 'undici';
import type { Logger } from '../../common/log.ts';

/**
 * One identity provider's JSON Web Key Set, as a sidecar keeps it (DESIGN.md,
 * Identity): fetched with undici, refreshed in the background before it goes
 * stale, and used for a bounded time when the provider cannot be reached.
 *
 * - `keyFor(kid)` answers synchronously whenever it can: from the cache, or
 *   with a refusal. It returns a promise only when it starts (or joins) a
 *   fetch: the first one, or a refetch for a `kid` it does not know (a key
 *   rotated in at the provider). Unknown kids refetch at most once per
 *   cooldown, so a flood of random kids is not a flood of fetches.
 * - Past `refreshAfterMs` the next lookup starts a background refresh and is
 *   answered from the cache meanwhile. When refreshes fail, cached keys keep
 *   working until `maxStaleMs` after the last good fetch; after that every
 *   lookup is refused ('stale'), and one that never had keys gets
 *   'unavailable' (the 503 case: nothing was ever verifiable).
 * - A key set removed at the provider is removed here at the next refresh,
 *   so a rotated-out key stops verifying without a restart.
 */
export interface JwksOptions {
  readonly uri: string;
  readonly logger: Logger;
  readonly now?: () => number;
  /** Age after which a lookup starts a background refresh (default 5 min). */
  readonly refreshAfterMs?: number;
  /** How long after the last good fetch cached keys may still be used (default 1 h). */
  readonly maxStaleMs?: number;
  /** Least time between refetches for unknown kids, and between failed fetches (default 30 s). */
  readonly cooldownMs?: number;
  /** A fetch not answered within this fails (default 5 s). */
  readonly timeoutMs?: number;
  /** A key set larger than this is refused unread (default 512 KiB). */
  readonly maxBytes?: number;
  /** Tests pass an undici dispatcher that trusts their CA. */
  readonly dispatcher?: Dispatcher;
}

export type KeyLookup =
  | { readonly ok: true; readonly jwk: JWK }
  | {
      readonly ok: false;
      /** unknown-kid: the set has no such key; stale: keys too old to trust; unavailable: never fetched. */
      readonly reason: 'unknown-kid' | 'stale' | 'unavailable';
    };

const MINUTE = 60_000;

export class JwksCache {
  readonly #options: JwksOptions;
  readonly #now: () => number;
  #keys = new Map<string, JWK>();
  /** When the keys last came from a good fetch; undefined until one did. */
  #fetchedAt: number | undefined;
  /** When the last fetch started (good or not), for the cooldown. */
  #attemptedAt = Number.NEGATIVE_INFINITY;
  #inFlight: Promise<void> | undefined;
  /** Fetches started, for tests and /stats. */
  fetches = 0;
  /** Bumped whenever a fetch replaces the key set, so holders of verified tokens can re-check their key. */
  version = 0;

  constructor(options: JwksOptions) {
    this.#options = options;
    this.#now = options.now ?? Date.now;
  }

  /** The key for `kid` (undefined: the set's only key), or why there is none. */
  keyFor(kid: string | undefined): KeyLookup | Promise<KeyLookup> {
    const now = this.#now();
    const fetchedAt = this.#fetchedAt;
    if (fetchedAt === undefined) {
      if (!this.#mayFetch(now)) return { ok: false, reason: 'unavailable' };
      return this.#fetch().then(() => this.#lookup(kid, this.#now()));
    }
    this.fresh();
    const found = this.#lookup(kid, now);
    if (found.ok || found.reason !== 'unknown-kid' || !this.#mayFetch(now)) return found;
    // A kid we do not know may be a key the provider just rotated in.
    return this.#fetch().then(() => this.#lookup(kid, this.#now()));
  }

  /**
   * Whether the held keys may still be trusted (fetched within the stale
   * bound), starting a background refresh when one is due. For a verified
   * token found in a verifier's cache, which never reaches keyFor: a hot
   * token must neither outlive the stale bound nor keep the set from
   * refreshing.
   */
  fresh(): boolean {
    const fetchedAt = this.#fetchedAt;
    if (fetchedAt === undefined) return false;
    const now = this.#now();
    if (now - fetchedAt >= (this.#options.refreshAfterMs ?? 5 * MINUTE) && this.#mayFetch(now)) {
      void this.#fetch();
    }
    return now - fetchedAt <= (this.#options.maxStaleMs ?? 60 * MINUTE);
  }

  /** Whether the set as last fetched still holds the key a token was verified with (same kid, same key material). */
  holds(jwk: JWK): boolean {
    return holdsKey(this.#keys, jwk);
  }

  #lookup(kid: string | undefined, now: number): KeyLookup {
    if (this.#fetchedAt === undefined) return { ok: false, reason: 'unavailable' };
    if (now - this.#fetchedAt > (this.#options.maxStaleMs ?? 60 * MINUTE)) {
      return { ok: false, reason: 'stale' };
    }
    return keyIn(this.#keys, kid);
  }

  #mayFetch(now: number): boolean {
    return (
      this.#inFlight !== undefined ||
      now - this.#attemptedAt >= (this.#options.cooldownMs ?? 30_000)
    );
  }

  /** Fetches the set (one fetch at a time; callers during it share it). Never rejects. */
  #fetch(): Promise<void> {
    if (this.#inFlight) return this.#inFlight;
    this.#attemptedAt = this.#now();
    this.fetches++;
    this.#inFlight = this.#download()
      .then((keys) => {
        this.#keys = keys;
        this.#fetchedAt = this.#now();
        this.version++;
      })
      .catch((error: unknown) => {
        // The line says what the failure costs: nothing yet, or every token of the provider.
        const fetchedAt = this.#fetchedAt;
        const details = {
          jwksUri: this.#options.uri,
          keys: this.#keys.size,
          lastGoodFetch: fetchedAt === undefined ? null : new Date(fetchedAt).toISOString(),
          error: (error as Error).message,
        };
        const { logger } = this.#options;
        if (fetchedAt === undefined) {
          logger.error('JWKS fetch failed and no keys were ever fetched: tokens get 503', details);
        } else if (this.#now() - fetchedAt > (this.#options.maxStaleMs ?? 60 * MINUTE)) {
          logger.error(
            'JWKS fetch failed and the held keys are past the stale bound: tokens get 401 until a fetch succeeds',
            details,
          );
        } else logger.warn('JWKS fetch failed; keeping the keys held', details);
      })
      .finally(() => {
        this.#inFlight = undefined;
      });
    return this.#inFlight;
  }

  async #download(): Promise<Map<string, JWK>> {
    const { uri, timeoutMs = 5_000, maxBytes = 512 * 1024, dispatcher } = this.#options;
    const response = await request(uri, {
      signal: AbortSignal.timeout(timeoutMs),
      headersTimeout: timeoutMs,
      bodyTimeout: timeoutMs,
      ...(dispatcher ? { dispatcher } : {}),
    });
    if (response.statusCode !== 200) {
      await response.body.dump();
      throw new Error(`${uri} answered ${response.statusCode}`);
    }
    const declared = Number(response.headers['content-length'] ?? 0);
    if (declared > maxBytes) {
      await response.body.dump();
      throw new Error(`the key set is larger than ${maxBytes} bytes`);
    }
    let size = 0;
    const chunks: Buffer[] = [];
    for await (const chunk of response.body) {
      size += chunk.length;
      if (size > maxBytes) throw new Error(`the key set is larger than ${maxBytes} bytes`);
      chunks.push(chunk);
    }
    return parseKeySet(Buffer.concat(chunks).toString('utf8'));
  }
}

/** The key for `kid` in `keys` (no kid: the set's only key). */
export function keyIn(keys: ReadonlyMap<string, JWK>, kid: string | undefined): KeyLookup {
  const jwk =
    kid === undefined ? (keys.size === 1 ? keys.values().next().value : undefined) : keys.get(kid);
  return jwk ? { ok: true, jwk } : { ok: false, reason: 'unknown-kid' };
}

/** Whether `keys` holds `jwk` (same kid, same key material). */
export function holdsKey(keys: ReadonlyMap<string, JWK>, jwk: JWK): boolean {
  const current = keys.get(typeof jwk.kid === 'string' ? jwk.kid : '');
  return (
    current === jwk || (current !== undefined && JSON.stringify(current) === JSON.stringify(jwk))
  );
}

/**
 * The public keys of a JWKS document by kid ('' for a key without one).
 * Private or symmetric keys are dropped: a verifier that found an `oct` key
 * in a public key set could be led into HMAC with public material. A
 * document with no usable key is an error, so a broken endpoint cannot
 * empty a working cache.
 */
export function parseKeySet(text: string): Map<string, JWK> {
  let document: unknown;
  try {
    document = JSON.parse(text);
  } catch {
    throw new Error('the key set is not JSON');
  }
  const keys = (document as { keys?: unknown } | null)?.keys;
  if (!Array.isArray(keys)) throw new Error('the key set has no "keys" array');
  const usable = new Map<string, JWK>();
  for (const key of keys as JWK[]) {
    if (typeof key !== 'object' || key === null) continue;
    if (key.kty !== 'RSA' && key.kty !== 'EC' && key.kty !== 'OKP') continue;
    if ('d' in key) continue;
    if (key.use !== undefined && key.use !== 'sig') continue;
    const kid = typeof key.kid === 'string' ? key.kid : '';
    if (!usable.has(kid)) usable.set(kid, Object.freeze({ ...key }));
  }
  if (!usable.size) throw new Error('the key set holds no public signing key');
  return usable;
}
