/**
 * A route's rate limit as the request path reads it: compiled once per
 * snapshot with the route (sidecar/policy/compiled-policy.ts), then frozen.
 */
import type { RateLimit } from '../../common/policy/schema.ts';
import { parseDuration } from '../../common/units.ts';
import type { Mode } from '../policy/decision.ts';
import type { BucketShape } from './token-bucket.ts';

/** What a route's rate limit made of one request (would-limit: audit mode let it through). */
export type RateLimitOutcome = 'allowed' | 'limited' | 'would-limit' | 'failed-closed';

export type RateLimitKey =
  | { readonly kind: 'principal' | 'subject' | 'source-ip' | 'consumer' | 'route' }
  | { readonly kind: 'claim'; readonly claim: string };

export interface CompiledRateLimit extends BucketShape {
  /**
   * Names this limit's buckets: the route and every parameter, so that an
   * edited limit starts from full buckets and an unchanged one keeps its
   * counts across snapshots.
   */
  readonly id: string;
  /** `namespace/name` of the RoutePolicy. */
  readonly policy: string;
  readonly route: string;
  /** `policy/route`: the limit's name in metrics and headers. */
  readonly name: string;
  readonly requests: number;
  readonly perMs: number;
  readonly burst: number;
  readonly key: RateLimitKey;
  /** The key as the policy wrote it, for metrics and /config. */
  readonly keyName: string;
  readonly scope: 'local' | 'global';
  readonly failureMode: 'open' | 'closed';
  /** The policy's mode: audit counts what would be limited and limits nothing. */
  readonly mode: Mode;
  /** The RateLimit-Policy header value (IETF httpapi-ratelimit-headers), built once. */
  readonly policyHeader: string;
  /** `"policy/route"`: the quoted policy name the RateLimit header repeats. */
  readonly headerName: string;
}

function parseKey(text: string): RateLimitKey {
  if (text.startsWith('claim:')) return Object.freeze({ kind: 'claim', claim: text.slice(6) });
  return Object.freeze({ kind: text as Exclude<RateLimitKey['kind'], 'claim'> });
}

export function compileRateLimit(
  spec: RateLimit,
  policy: string,
  route: string,
  mode: Mode,
): CompiledRateLimit {
  const perMs = parseDuration(spec.per);
  const burst = spec.burst ?? 0;
  const keyName = spec.key ?? 'principal';
  const scope = spec.scope ?? 'local';
  const name = `${policy}/${route}`;
  const headerName = `"${name}"`;
  // The header states a quota per whole seconds; a sub-second limit is restated per second.
  const windowSeconds = Math.max(1, Math.round(perMs / 1000));
  const quota = Math.ceil((spec.requests * windowSeconds * 1000) / perMs);
  return Object.freeze({
    id: `${policy}/${route}|${spec.requests}/${perMs}ms+${burst}|${keyName}|${scope}`,
    policy,
    route,
    name,
    requests: spec.requests,
    perMs,
    burst,
    intervalMs: perMs / spec.requests,
    capacity: spec.requests + burst,
    key: parseKey(keyName),
    keyName,
    scope,
    failureMode: spec.failureMode ?? 'open',
    mode,
    policyHeader: `${headerName};q=${quota};w=${windowSeconds}`,
    headerName,
  });
}

/** A limit as /config on the admin port shows it. */
export function describeRateLimit(limit: CompiledRateLimit) {
  return {
    requests: limit.requests,
    perMs: limit.perMs,
    burst: limit.burst,
    key: limit.keyName,
    scope: limit.scope,
    ...(limit.scope === 'global' ? { failureMode: limit.failureMode } : {}),
  };
}

/** The RateLimit header value after a decision: tokens left, and whole seconds until the bucket is full (or, when limited, until a token is back). */
export function rateLimitHeader(
  limit: CompiledRateLimit,
  remaining: number,
  seconds: number,
): string {
  return `${limit.headerName};r=${remaining};t=${seconds}`;
}
