import type { Dispatcher } from 'undici';
import type { Logger } from '../../common/log.ts';
import type { JwtProvider, RoutePolicy } from '../../common/policy/schema.ts';
import { JwksCache } from './jwks.ts';
import { JwtVerifier } from './jwt-verifier.ts';

/** Algorithms a provider accepts when its policy names none. */
export const DEFAULT_JWT_ALGORITHMS = ['RS256', 'ES256'] as const;

/**
 * The JWT verifiers of the policies in force, by issuer. Built at snapshot
 * time; a provider whose configuration did not change keeps its verifier
 * (and with it the verified-token cache), and every provider of one key-set
 * URI shares one JwksCache, so a policy edit neither refetches keys nor
 * re-verifies hot tokens.
 */
export class JwtProviders {
  readonly #logger: Logger;
  readonly #now: () => number;
  readonly #dispatcher: Dispatcher | undefined;
  #keySets = new Map<string, JwksCache>();
  #verifiers = new Map<string, JwtVerifier>();

  constructor(options: { logger: Logger; now?: () => number; dispatcher?: Dispatcher }) {
    this.#logger = options.logger;
    this.#now = options.now ?? Date.now;
    this.#dispatcher = options.dispatcher;
  }

  /**
   * The verifiers for `policies`, by issuer; throws when two policies
   * configure one issuer differently (which would decide a token's fate by
   * policy order).
   */
  compile(policies: readonly RoutePolicy[]): ReadonlyMap<string, JwtVerifier> {
    const byIssuer = new Map<string, { key: string; provider: JwtProvider }>();
    for (const policy of policies) {
      for (const provider of policy.spec.jwt ?? []) {
        const key = JSON.stringify(provider);
        const seen = byIssuer.get(provider.issuer);
        if (seen && seen.key !== key) {
          throw new Error(
            `two policies configure the JWT issuer ${JSON.stringify(provider.issuer)} differently`,
          );
        }
        byIssuer.set(provider.issuer, { key, provider });
      }
    }
    const keySets = new Map<string, JwksCache>();
    const verifiers = new Map<string, JwtVerifier>();
    const result = new Map<string, JwtVerifier>();
    for (const [issuer, { key, provider }] of byIssuer) {
      const keys =
        keySets.get(provider.jwksUri) ??
        this.#keySets.get(provider.jwksUri) ??
        new JwksCache({
          uri: provider.jwksUri,
          logger: this.#logger,
          now: this.#now,
          ...(this.#dispatcher ? { dispatcher: this.#dispatcher } : {}),
        });
      keySets.set(provider.jwksUri, keys);
      const verifier =
        this.#verifiers.get(key) ??
        new JwtVerifier(
          {
            issuer,
            ...(provider.audiences ? { audiences: provider.audiences } : {}),
            algorithms: provider.algorithms ?? DEFAULT_JWT_ALGORITHMS,
            keys,
            ...(provider.typ ? { typ: provider.typ } : {}),
            ...(provider.clockSkewSeconds !== undefined
              ? { clockSkewSeconds: provider.clockSkewSeconds }
              : {}),
          },
          { now: this.#now },
        );
      verifiers.set(key, verifier);
      result.set(issuer, verifier);
    }
    // Providers no longer configured are dropped with their caches.
    this.#keySets = keySets;
    this.#verifiers = verifiers;
    return result;
  }
}
