import { unmappedAddress } from '../../common/address.ts';
import type { LocalReply } from '../http/local-reply.ts';
import type { SnapshotState } from '../policy/snapshot-state.ts';
import { bucketKey } from '../rate-limit/bucket-key.ts';
import type { GlobalLimiter, GlobalTake } from '../rate-limit/global-limiter.ts';
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
    exchange.rateLimit = 'limited';
    metrics.rateLimits.inc(limit.name, limit.keyName, 'limited');
    return limited(limit, take);
  }
  const outcome = take.allowed ? 'allowed' : 'would-limit';
  exchange.rateLimit = outcome;
  metrics.rateLimits.inc(limit.name, limit.keyName, outcome);
  const headers = [
    'ratelimit-policy',
    limit.policyHeader,
    'ratelimit',
    rateLimitHeader(
      limit,
      take.remaining,
      seconds(take.allowed ? take.resetMs : take.retryAfterMs),
    ),
  ];
  // After any the gateway's CORS step set.
  exchange.responseHeaders = exchange.responseHeaders
    ? exchange.responseHeaders.concat(headers)
    : headers;
  return undefined;
}

const FAILED_CLOSED_REPLY = (limit: CompiledRateLimit): LocalReply => ({
  status: 429,
  code: 'POSTERN_RATE_LIMIT_UNAVAILABLE',
  message: 'the shared rate-limit count did not answer, and this limit fails closed',
  headers: { 'retry-after': '1', 'ratelimit-policy': limit.policyHeader },
  details: { policy: limit.policy, route: limit.route, retryAfterSeconds: 1 },
});

/**
 * Spends one token of the route's limit (DESIGN.md, Rate limits). Runs after
 * authorize, which hands it the route's limit with the decision: a request
 * authorization refused has already been answered and spends nothing. A
 * local limit answers synchronously; a global one waits for Redis only while
 * Redis is healthy (global-limiter.ts).
 */
export function rateLimitRequest(deps: {
  state: SnapshotState;
  buckets: LocalBuckets;
  global: GlobalLimiter;
  metrics: SidecarMetrics;
  now: () => number;
}): Filter {
  const { state, buckets, global, metrics, now } = deps;
  const decide = (exchange: Exchange, limit: CompiledRateLimit, take: GlobalTake) => {
    if ('failedClosed' in take) {
      exchange.rateLimit = 'failed-closed';
      metrics.rateLimits.inc(limit.name, limit.keyName, 'failed-closed');
      return FAILED_CLOSED_REPLY(limit);
    }
    return applyTake(exchange, limit, take, metrics);
  };
  return {
    name: 'rate-limit',
    onRequest(exchange) {
      const limit = exchange.decision?.rateLimit;
      if (!limit) return undefined;
      const key = bucketKey(limit.key, {
        principal: exchange.principal,
        claims: exchange.claims,
        // Only a source-ip key reads the socket's address.
        sourceAddress:
          limit.key.kind === 'source-ip'
            ? (exchange.clientAddress ?? unmappedAddress(exchange.req.socket.remoteAddress))
            : undefined,
        consumer: exchange.consumer,
      });
      if (limit.scope === 'local')
        return applyTake(exchange, limit, buckets.take(limit, key, now()), metrics);
      const replicas = state.current?.snapshot.rateLimit?.replicas ?? 1;
      const take = global.take(limit, key, replicas);
      return take instanceof Promise
        ? take.then((settled) => decide(exchange, limit, settled))
        : decide(exchange, limit, take);
    },
  };
}
