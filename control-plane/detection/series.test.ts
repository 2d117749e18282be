import t from 'tap';
import { Series } from './series.ts';

/** A seeded generator, so a failure can be replayed. */
function random(seed: number): () => number {
  let state = seed;
  return () => {
    state = (state * 1103515245 + 12345) % 2 ** 31;
    return state / 2 ** 31;
  };
}

t.test(
  'quantiles agree with sorting the values held, before and after the ring wraps',
  async (t) => {
    const next = random(7);
    for (const pushes of [1, 5, 100, 312, 1000]) {
      const series = new Series(312);
      const pushed: number[] = [];
      for (let i = 0; i < pushes; i++) {
        const value = Math.round(next() * 1000);
        series.push(value);
        pushed.push(value);
      }
      const held = pushed.slice(-312).sort((a, b) => a - b);
      for (const q of [0, 0.5, 0.9, 0.99, 1]) {
        const rank = Math.min(held.length - 1, Math.max(0, Math.ceil(q * held.length) - 1));
        t.equal(series.quantile(q), held[rank], `${pushes} pushes, q=${q}`);
      }
    }
  },
);

t.test('sums count back from the latest push, and stop at what is held', async (t) => {
  const series = new Series(4);
  for (const value of [1, 2, 3, 4, 5, 6]) series.push(value);
  t.equal(series.sumAgo(1, 1), 6);
  t.equal(series.sumAgo(1, 3), 6 + 5 + 4);
  t.equal(series.sumAgo(3, 10), 4 + 3, 'only four are held');
  t.equal(new Series(4).quantile(0.99), 0, 'empty');
});

t.test('a quantile is reused until refreshEvery values have come', async (t) => {
  const series = new Series(100, 3);
  for (let i = 1; i <= 10; i++) series.push(i);
  t.equal(series.quantile(1), 10);
  series.push(50);
  series.push(60);
  t.equal(series.quantile(1), 10, 'two pushes since: the cached answer');
  series.push(70);
  t.equal(series.quantile(1), 70, 'the third refreshes it');
});
