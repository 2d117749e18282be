import t from 'tap';
import { startRedis } from '../../test/redis.ts';
import { BUCKET_SCENARIOS } from './bucket-scenarios.ts';
import { compileRateLimit } from './limit.ts';
import { RedisBuckets } from './redis-buckets.ts';

/** A RedisBuckets on a Redis of its own, once it is ready. */
async function connected(t: { teardown(fn: () => unknown): void }): Promise<RedisBuckets> {
  const server = await startRedis(t);
  let ready!: () => void;
  const up = new Promise<void>((resolve) => {
    ready = resolve;
  });
  const redis = new RedisBuckets({
    url: server.url,
    commandTimeoutMs: 1000,
    onReady: () => ready(),
    onTrouble: () => {},
  });
  t.teardown(() => redis.close());
  await up;
  return redis;
}

t.test('the Redis script keeps the same bucket as the local one, on a real Redis', async (t) => {
  const redis = await connected(t);
  for (const [n, scenario] of BUCKET_SCENARIOS.entries()) {
    const limit = compileRateLimit(
      {
        requests: scenario.requests,
        per: `${scenario.perMs}ms`,
        burst: scenario.burst,
        scope: 'global',
      },
      'test/scenarios',
      `scenario-${n}`,
      'enforce',
    );
    const start = 1_800_000_000_000;
    const seen = [];
    for (const step of scenario.steps) {
      const take = await redis.take(limit, 'caller', start + step.atMs);
      seen.push({ allowed: take.allowed, remaining: take.remaining });
    }
    t.same(
      seen,
      scenario.steps.map(({ allowed, remaining }) => ({ allowed, remaining })),
      scenario.name,
    );
  }
});

t.test(
  'a refused take says how long until a token is back, and when the bucket is full again',
  async (t) => {
    const redis = await connected(t);
    const limit = compileRateLimit(
      { requests: 2, per: '1s', scope: 'global' },
      'test/p',
      'r',
      'enforce',
    );
    t.ok((await redis.take(limit, 'a')).allowed);
    t.ok((await redis.take(limit, 'a')).allowed);
    const refused = await redis.take(limit, 'a');
    t.notOk(refused.allowed);
    t.ok(
      refused.retryAfterMs > 0 && refused.retryAfterMs <= 500,
      `retry after ${refused.retryAfterMs} ms`,
    );
    t.ok(refused.resetMs > 500 && refused.resetMs <= 1000);
  },
);
