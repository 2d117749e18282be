import { unmappedAddress } from '../../common/address.ts';
import type { LocalReply } from '../http/local-reply.ts';
import { bucketKey } from '../rate-limit/bucket-key.ts';
import { type CompiledRateLimit, rateLimitHeader } from '../rate-limit/limit.ts';
import type { LocalBuckets } from '../rate-limit/local-buckets.ts';
import type { Take } from '../rate-limit/token-bucket.ts';
import type { SidecarMetrics } from '../telemetry/metrics.ts';
import type { Exchange, Filter } from './filter.ts';

const seconds = (ms: number) => Math.ceil(ms / 1000);

function limited(limit: CompiledRateLimit, take: Take): LocalReply {
  const retryAfter = Math.max(1, seconds(take.retryAfterMs));
  return {
    status: 429,
    code: 'POSTERN_RATE_LIMITED',
    message: `rate limit exceeded: ${limit.requests} per ${limit.perMs} ms by ${limit.keyName}`,
    headers: {
      'retry-after': String(retryAfter),
      'ratelimit-policy': limit.policyHeader,
      ratelimit: rateLimitHeader(limit, 0, retryAfter),
    },
    details: { policy: limit.policy, route: limit.route, retryAfterSeconds: retryAfter },
  };
}

/**
 * The outcome of one token taken: a 429 (enforce), or the request goes on
 * with RateLimit headers on its response; audit mode counts what it would
 * have limited and lets it through.
 */
export function applyTake(
  exchange: Exchange,
  limit: CompiledRateLimit,
  take: Take,
  metrics: SidecarMetrics,
): LocalReply | undefined {
  if (!take.allowed && limit.mode === 'enforce') {
    metrics.rateLimits.inc(limit.name, limit.keyName, 'limited');
    return limited(limit, take);
  }
  metrics.rateLimits.inc(limit.name, limit.keyName, take.allowed ? 'allowed' : 'would-limit');
  exchange.responseHeaders = [
    'ratelimit-policy',
    limit.policyHeader,
    'ratelimit',
    rateLimitHeader(
      limit,
      take.remaining,
      seconds(take.allowed ? take.resetMs : take.retryAfterMs),
    ),
  ];
  return undefined;
}

/**
 * Spends one token of the route's limit (DESIGN.md, Rate limits). Runs after
 * authorize, which hands it the route's limit with the decision: a request
 * authorization refused has already been answered and spends nothing.
 */
export function rateLimitRequest(deps: {
  buckets: LocalBuckets;
  metrics: SidecarMetrics;
  now: () => number;
}): Filter {
  const { buckets, metrics, now } = deps;
  return {
    name: 'rate-limit',
    onRequest(exchange) {
      const limit = exchange.decision?.rateLimit;
      if (!limit) return undefined;
      const key = bucketKey(limit.key, {
        principal: exchange.principal,
        claims: exchange.claims,
        sourceAddress: unmappedAddress(exchange.req.socket.remoteAddress),
      });
      return applyTake(exchange, limit, buckets.take(limit, key, now()), metrics);
    },
  };
}
