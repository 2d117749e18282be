import t from 'tap';
import { testLogger } from '../../test/helpers.ts';
import { SidecarMetrics } from '../telemetry/metrics.ts';
import { GlobalLimiter, shareOf } from './global-limiter.ts';
import { compileRateLimit } from './limit.ts';
import { LocalBuckets } from './local-buckets.ts';

const limit = compileRateLimit(
  { requests: 30, per: '1s', burst: 3, scope: 'global' },
  'shop/orders-api',
  'list-orders',
  'enforce',
);

t.test("a replica's share is the same rate spread over the replicas", async (t) => {
  const share = shareOf(limit, 3);
  t.equal(share.intervalMs, limit.intervalMs * 3, 'a token every 100 ms instead of every 33');
  t.equal(share.capacity, 11, '33 at once across the mesh, 11 here');
  t.not(share.id, limit.id, 'its buckets are its own');
  t.equal(shareOf(limit, 1), limit, 'one replica: the whole limit');
  t.equal(shareOf(limit, 100).capacity, 1, 'never less than one request at once');
});

t.test('without a Redis the share decides, synchronously', async (t) => {
  let clock = 0;
  const global = new GlobalLimiter({
    buckets: new LocalBuckets(),
    logger: testLogger('global limiter'),
    metrics: new SidecarMetrics(),
    now: () => clock,
    commandTimeoutMs: 50,
  });
  t.teardown(() => global.close());
  t.equal(global.mode, 'local share');
  const answers = [];
  for (let i = 0; i < 12; i++) {
    const take = global.take(limit, 'caller', 3);
    t.notOk(take instanceof Promise, 'no await on the path');
    answers.push('allowed' in take && take.allowed);
  }
  t.same(answers, [...Array(11).fill(true), false], "11 at once is this replica's share of 33");
  clock += 100;
  const back = global.take(limit, 'caller', 3);
  t.ok(
    !(back instanceof Promise) && 'allowed' in back && back.allowed,
    'a token back after 100 ms',
  );
});
