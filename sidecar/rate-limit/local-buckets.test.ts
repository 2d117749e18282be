import t from 'tap';
import { compileRateLimit } from './limit.ts';
import { DEFAULT_MAX_BUCKETS, LocalBuckets } from './local-buckets.ts';

const limit = compileRateLimit(
  { requests: 2, per: '1s', key: 'principal' },
  'shop/orders-api',
  'list-orders',
  'enforce',
);

t.test('buckets are per key and per limit', async (t) => {
  const buckets = new LocalBuckets();
  t.ok(buckets.take(limit, 'alice', 0).allowed);
  t.ok(buckets.take(limit, 'alice', 0).allowed);
  t.notOk(buckets.take(limit, 'alice', 0).allowed, "alice's bucket is empty");
  t.ok(buckets.take(limit, 'bob', 0).allowed, "bob's is not");
  const other = compileRateLimit(
    { requests: 2, per: '1s' },
    'shop/orders-api',
    'get-order',
    'enforce',
  );
  t.ok(other.id !== limit.id);
  t.ok(buckets.take(other, 'alice', 0).allowed, "another route's limit has its own buckets");
});

t.test('an edited limit starts from full buckets; an unchanged one keeps its count', async (t) => {
  const buckets = new LocalBuckets();
  buckets.take(limit, 'alice', 0);
  buckets.take(limit, 'alice', 0);
  const same = compileRateLimit(
    { requests: 2, per: '1s', key: 'principal' },
    'shop/orders-api',
    'list-orders',
    'enforce',
  );
  t.notOk(buckets.take(same, 'alice', 0).allowed, 'the same limit from a new snapshot');
  const raised = compileRateLimit(
    { requests: 3, per: '1s' },
    'shop/orders-api',
    'list-orders',
    'enforce',
  );
  t.ok(buckets.take(raised, 'alice', 0).allowed);
});

t.test(
  'full buckets are swept away; a flood of keys past the bound drops the least recently used',
  async (t) => {
    let evicted = 0;
    const buckets = new LocalBuckets(1000, () => evicted++);
    for (let i = 0; i < 1000; i++) buckets.take(limit, `caller-${i}`, 0);
    t.equal(buckets.size, 1000);
    buckets.take(limit, 'caller-0', 1); // caller-0 is now the most recently used
    for (let i = 1000; i < 1500; i++) buckets.take(limit, `caller-${i}`, 1);
    t.equal(buckets.size, 1000, 'never more than the bound');
    t.equal(evicted, 500, 'each newcomer dropped one bucket that was not yet full');
    t.notOk(buckets.take(limit, 'caller-0', 1).allowed, 'the recently used bucket was kept');
    buckets.sweep(10_000);
    t.equal(buckets.size, 0, 'every bucket is full again after a second: all swept');
  },
);

t.test('a flood of 200,000 distinct callers holds the bucket count at the bound', async (t) => {
  const buckets = new LocalBuckets();
  const flood = compileRateLimit(
    { requests: 100, per: '1m', key: 'source-ip' },
    'shop/a',
    'r',
    'enforce',
  );
  for (let i = 0; i < 200_000; i++)
    buckets.take(flood, `10.${i >> 16}.${(i >> 8) & 255}.${i & 255}`, i / 200);
  t.equal(buckets.size, DEFAULT_MAX_BUCKETS);
  t.ok(
    buckets.take(flood, '10.0.0.1', 1000).allowed,
    'an evicted caller starts from a full bucket',
  );
});
