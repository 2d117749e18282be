import type { Dispatcher } from 'undici';
import type { Logger } from '../../common/log.ts';
import type { JwtProvider, RoutePolicy } from '../../common/policy/schema.ts';
import { InlineKeySet } from './inline-key-set.ts';
import { JwksCache } from './jwks.ts';
import { JwtVerifier } from './jwt-verifier.ts';
import { type TokenSource, TokenSources } from './token-sources.ts';

/** Algorithms a provider accepts when its policy names none. */
export const DEFAULT_JWT_ALGORITHMS = ['RS256', 'ES256'] as const;

/** One issuer's provider as the request path uses it. */
export interface JwtIssuer {
  readonly verifier: JwtVerifier;
  /**
   * Where its tokens may come from (interned: compare by identity), each
   * with the headers the app must not receive once such a token verified:
   * every claim header of the snapshot, and the token's own header (or the
   * Cookie header, restated without it) unless the token is forwarded.
   * Built here, so the request path picks a ready set.
   */
  readonly sources: ReadonlyMap<TokenSource, ReadonlySet<string>>;
  readonly forwardOriginalToken: boolean;
  /** [lower-case header, claim] for the app. */
  readonly claimHeaders: readonly (readonly [header: string, claim: string])[];
}

/** The JWT side of a snapshot, compiled once. */
export interface CompiledJwt {
  readonly providers: ReadonlyMap<string, JwtIssuer>;
  /** Every source any provider reads, each once, in the order found. */
  readonly sources: readonly TokenSource[];
  /** Every provider's claim headers: a client's copy never reaches the app. */
  readonly claimHeaders: ReadonlySet<string>;
}

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
   * The JWT configuration of `policies`; throws when two policies configure
   * one issuer differently (which would decide a token's fate by policy
   * order). Undefined when no policy accepts JWTs.
   */
  compile(policies: readonly RoutePolicy[]): CompiledJwt | undefined {
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
    const claimHeaders = new Set<string>();
    for (const { provider } of byIssuer.values()) {
      for (const { header } of provider.outputClaimToHeaders ?? []) {
        claimHeaders.add(header.toLowerCase());
      }
    }
    const keySets = new Map<string, JwksCache>();
    const verifiers = new Map<string, JwtVerifier>();
    const sources = new TokenSources();
    const providers = new Map<string, JwtIssuer>();
    for (const [issuer, { key, provider }] of byIssuer) {
      if (provider.jwksUri) keySets.set(provider.jwksUri, this.#keySet(provider.jwksUri, keySets));
      const verifier = this.#verifiers.get(key) ?? this.#verifier(provider, keySets);
      verifiers.set(key, verifier);
      const forward = provider.forwardOriginalToken ?? false;
      const stripped = new Map<TokenSource, ReadonlySet<string>>();
      for (const source of sources.of(provider)) {
        const own = source.kind === 'header' ? source.name : 'cookie';
        stripped.set(source, forward ? claimHeaders : new Set([...claimHeaders, own]));
      }
      providers.set(issuer, {
        verifier,
        sources: stripped,
        forwardOriginalToken: forward,
        claimHeaders: Object.freeze(
          (provider.outputClaimToHeaders ?? []).map(
            ({ header, claim }) => [header.toLowerCase(), claim] as const,
          ),
        ),
      });
    }
    // Providers no longer configured are dropped with their caches.
    this.#keySets = keySets;
    this.#verifiers = verifiers;
    if (!providers.size) return undefined;
    return Object.freeze({ providers, sources: Object.freeze(sources.all), claimHeaders });
  }

  /** One key set per URI, kept across snapshots so a policy edit does not refetch. */
  #keySet(uri: string, fresh: ReadonlyMap<string, JwksCache>): JwksCache {
    return (
      fresh.get(uri) ??
      this.#keySets.get(uri) ??
      new JwksCache({
        uri,
        logger: this.#logger,
        now: this.#now,
        ...(this.#dispatcher ? { dispatcher: this.#dispatcher } : {}),
      })
    );
  }

  #verifier(provider: JwtProvider, keySets: ReadonlyMap<string, JwksCache>): JwtVerifier {
    const keys = provider.jwksUri
      ? keySets.get(provider.jwksUri)!
      : new InlineKeySet(provider.jwks!);
    return new JwtVerifier(
      {
        issuer: provider.issuer,
        ...(provider.audiences ? { audiences: provider.audiences } : {}),
        algorithms: provider.algorithms ?? DEFAULT_JWT_ALGORITHMS,
        keys,
        ...(provider.typ ? { typ: provider.typ } : {}),
        ...(provider.clockSkewSeconds !== undefined
          ? { clockSkewSeconds: provider.clockSkewSeconds }
          : {}),
        ...(provider.requiredClaims ? { requiredClaims: provider.requiredClaims } : {}),
      },
      { now: this.#now },
    );
  }
}
