import t from 'tap';
import { BUCKET_SCENARIOS } from './bucket-scenarios.ts';
import { takeToken } from './token-bucket.ts';

for (const scenario of BUCKET_SCENARIOS) {
  t.test(`token bucket: ${scenario.name}`, async (t) => {
    const shape = {
      intervalMs: scenario.perMs / scenario.requests,
      capacity: scenario.requests + scenario.burst,
    };
    let tat: number | undefined;
    const start = 1_800_000_000_000;
    for (const [i, step] of scenario.steps.entries()) {
      const take = takeToken(shape, tat, start + step.atMs);
      t.same(
        { allowed: take.allowed, remaining: take.remaining },
        { allowed: step.allowed, remaining: step.remaining },
        `request ${i} at +${step.atMs} ms`,
      );
      tat = take.tat;
    }
  });
}

t.test('a refused request says how long until a token is back, and spends nothing', async (t) => {
  const shape = { intervalMs: 250, capacity: 2 };
  const first = takeToken(shape, undefined, 0);
  const second = takeToken(shape, first.tat, 0);
  const refused = takeToken(shape, second.tat, 100);
  t.equal(refused.allowed, false);
  t.equal(refused.retryAfterMs, 150, 'the first token comes back 250 ms after the bucket emptied');
  t.equal(refused.tat, second.tat, 'the bucket is as it was');
  t.equal(refused.resetMs, 400, 'full again 500 ms after it emptied');
  t.equal(second.resetMs, 500);
});
