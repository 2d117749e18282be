import t from 'tap';
import { compileRateLimit, describeRateLimit, rateLimitHeader } from './limit.ts';

t.test('a limit compiles to its bucket shape and its IETF RateLimit-Policy header', async (t) => {
  const limit = compileRateLimit(
    { requests: 100, per: '1m', burst: 20, key: 'claim:tenant', scope: 'global' },
    'shop/orders-api',
    'list-orders',
    'enforce',
  );
  t.equal(limit.intervalMs, 600);
  t.equal(limit.capacity, 120);
  t.same(limit.key, { kind: 'claim', claim: 'tenant' });
  t.equal(limit.policyHeader, '"shop/orders-api/list-orders";q=100;w=60');
  t.equal(rateLimitHeader(limit, 7, 3), '"shop/orders-api/list-orders";r=7;t=3');
  t.same(describeRateLimit(limit), {
    requests: 100,
    perMs: 60_000,
    burst: 20,
    key: 'claim:tenant',
    scope: 'global',
    failureMode: 'open',
  });
});

t.test(
  'defaults: principal, local, no burst; a sub-second window is stated per second',
  async (t) => {
    const limit = compileRateLimit({ requests: 5, per: '100ms' }, 'a/b', 'c', 'audit');
    t.same(describeRateLimit(limit), {
      requests: 5,
      perMs: 100,
      burst: 0,
      key: 'principal',
      scope: 'local',
    });
    t.equal(limit.policyHeader, '"a/b/c";q=50;w=1');
    t.equal(limit.mode, 'audit');
  },
);
