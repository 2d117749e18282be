import type { JWK } from 'jose';
import { holdsKey, type KeyLookup, keyIn, parseKeySet } from './jwks.ts';

/**
 * A provider's keys written into its policy (`spec.jwt[].jwks`): the same
 * lookups as a fetched JwksCache, never stale, never refetched. A policy
 * edit that changes them builds a new set (and a new verifier with it).
 */
export class InlineKeySet {
  readonly #keys: ReadonlyMap<string, JWK>;
  /** Never changes: a verified token's key stays in this set for the set's life. */
  readonly version = 0;

  constructor(jwks: { readonly keys: readonly unknown[] }) {
    // Validation refused private and symmetric keys already; parseKeySet drops them again.
    this.#keys = parseKeySet(JSON.stringify(jwks));
  }

  /** Written into the policy: as fresh as the policy. */
  fresh(): boolean {
    return true;
  }

  keyFor(kid: string | undefined): KeyLookup {
    return keyIn(this.#keys, kid);
  }

  holds(jwk: JWK): boolean {
    return holdsKey(this.#keys, jwk);
  }
}
