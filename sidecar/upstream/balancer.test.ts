import t from 'tap';
import {
  Balancer,
  CONSECUTIVE_FAILURES,
  EJECTION_BASE_MS,
  EJECTION_MAX_MS,
  RetryBudget,
} from './balancer.ts';
import type { Endpoint } from './service-directory.ts';

const endpoint = (i: number): Endpoint => ({
  service: 'orders',
  namespace: 'shop',
  address: `10.0.1.${i}:15006`,
  spiffeId: 'spiffe://cluster.local/ns/shop/sa/orders',
});
const THREE = [endpoint(1), endpoint(2), endpoint(3)];

/** A seeded PRNG, so the draws are the same each run. */
function seeded(seed: number): () => number {
  let state = seed;
  return () => {
    state = (state * 1_103_515_245 + 12_345) % 2_147_483_648;
    return state / 2_147_483_648;
  };
}

t.test('of two random choices the one with fewer requests in flight wins', async (t) => {
  const balancer = new Balancer({ random: seeded(7) });
  // endpoint 1 is slow: three requests stuck in flight.
  for (let i = 0; i < 3; i++) balancer.started(THREE[0]!);
  const picks = new Map<Endpoint, number>();
  for (let i = 0; i < 3000; i++) {
    const picked = balancer.pick(THREE);
    picks.set(picked, (picks.get(picked) ?? 0) + 1);
  }
  t.equal(picks.get(THREE[0]!) ?? 0, 0, 'the loaded endpoint never beats an idle one');
  t.ok(Math.abs(picks.get(THREE[1]!)! - picks.get(THREE[2]!)!) < 300, 'the idle ones share');
});

t.test('a retry avoids the endpoint it left when there is another', async (t) => {
  const balancer = new Balancer({ random: seeded(3) });
  for (let i = 0; i < 100; i++) t.not(balancer.pick(THREE, THREE[1]), THREE[1]);
  t.equal(balancer.pick([THREE[1]!], THREE[1]), THREE[1], 'a service of one has no other');
});

t.test(
  'consecutive failures eject an endpoint for a growing interval, then it is probed back',
  async (t) => {
    let now = 1_000_000;
    const balancer = new Balancer({ random: seeded(5), now: () => now });
    const fail = () => {
      balancer.started(THREE[0]!);
      return balancer.finished(THREE[0]!, true, THREE);
    };
    for (let i = 1; i < CONSECUTIVE_FAILURES; i++) t.notOk(fail(), `failure ${i}: not yet`);
    t.ok(fail(), `failure ${CONSECUTIVE_FAILURES}: ejected`);
    for (let i = 0; i < 200; i++) t.not(balancer.pick(THREE), THREE[0], 'ejected: not picked');
    t.match(balancer.describe(THREE)[0], { state: 'ejected', ejections: 1 });

    now += EJECTION_BASE_MS;
    t.ok(
      Array.from({ length: 200 }, () => balancer.pick(THREE)).includes(THREE[0]!),
      'back once the interval passes',
    );
    for (let i = 1; i < CONSECUTIVE_FAILURES; i++) fail();
    t.ok(fail(), 'failing again: ejected again');
    t.equal(
      balancer.stateOf(THREE[0]!).ejectedUntilMs,
      now + 2 * EJECTION_BASE_MS,
      'twice as long the second time',
    );
    balancer.stateOf(THREE[0]!).ejections = 100;
    now += EJECTION_MAX_MS;
    for (let i = 0; i < CONSECUTIVE_FAILURES; i++) fail();
    t.equal(balancer.stateOf(THREE[0]!).ejectedUntilMs, now + EJECTION_MAX_MS, 'capped');
  },
);

t.test('a success forgets a failure streak', async (t) => {
  const balancer = new Balancer();
  for (let i = 1; i < CONSECUTIVE_FAILURES; i++) {
    balancer.started(THREE[0]!);
    balancer.finished(THREE[0]!, true, THREE);
  }
  balancer.started(THREE[0]!);
  balancer.finished(THREE[0]!, false, THREE);
  balancer.started(THREE[0]!);
  t.notOk(balancer.finished(THREE[0]!, true, THREE));
});

t.test('never more than half of a service is ejected, and never all of it', async (t) => {
  const balancer = new Balancer();
  const ejectedBy = (e: Endpoint) => {
    let ejected = false;
    for (let i = 0; i < CONSECUTIVE_FAILURES; i++) {
      balancer.started(e);
      ejected = balancer.finished(e, true, THREE) || ejected;
    }
    return ejected;
  };
  t.ok(ejectedBy(THREE[0]!));
  t.notOk(ejectedBy(THREE[1]!), 'a second of three would be more than half');
  const two = [endpoint(8), endpoint(9)];
  const pair = new Balancer();
  for (const e of two) {
    for (let i = 0; i < CONSECUTIVE_FAILURES; i++) {
      pair.started(e);
      pair.finished(e, true, two);
    }
  }
  t.same(
    pair.describe(two).map((d) => (d as { state: string }).state),
    ['ejected', 'active'],
    'one of two at most',
  );
  const one = [endpoint(7)];
  const single = new Balancer();
  for (let i = 0; i < CONSECUTIVE_FAILURES; i++) {
    single.started(one[0]!);
    single.finished(one[0]!, true, one);
  }
  t.match(single.describe(one)[0], { state: 'active' }, 'a service of one is never ejected');
});

t.test('the retry budget allows a share of recent requests plus a floor', async (t) => {
  let now = 0;
  const budget = new RetryBudget({ ratio: 0.2, minPerSecond: 1, windowMs: 10_000, now: () => now });
  for (let i = 0; i < 100; i++) budget.request();
  // 20% of 100, plus 1 a second over 10 s: 30.
  let granted = 0;
  while (budget.tryRetry()) granted++;
  t.equal(granted, 30);
  now += 11_000;
  for (let i = 0; i < 10; i++) budget.request();
  granted = 0;
  while (budget.tryRetry()) granted++;
  t.equal(granted, 12, 'the window moved on: 20% of 10, plus 10');
});
