import t from 'tap';
import { ByteBudgets } from './byte-budgets.ts';

const MINUTE = 60_000;
const T = 1_800_000_000_000;

t.test("a caller's budget is the cap, less what it read this period", async (t) => {
  const budgets = new ByteBudgets();
  t.equal(budgets.remaining('a', 1000, MINUTE, T), 1000, 'whole before any read');
  budgets.spend('a', 700, MINUTE, T);
  t.equal(budgets.remaining('a', 1000, MINUTE, T + 1000), 300);
  budgets.spend('a', 500, MINUTE, T + 2000);
  t.equal(budgets.remaining('a', 1000, MINUTE, T + 3000), 0, 'never below nothing');
  t.equal(budgets.remaining('b', 1000, MINUTE, T + 3000), 1000, 'another caller has its own');
});

t.test('the budget comes back whole when the period turns', async (t) => {
  const budgets = new ByteBudgets();
  const start = Math.floor(T / MINUTE) * MINUTE;
  budgets.spend('a', 1000, MINUTE, start + 59_000);
  t.equal(budgets.remaining('a', 1000, MINUTE, start + 59_999), 0);
  t.equal(budgets.remaining('a', 1000, MINUTE, start + MINUTE), 1000);
  t.equal(ByteBudgets.periodEndMs(start + 59_000, MINUTE), start + MINUTE);
});

t.test('past its bound the oldest entries go, counted', async (t) => {
  let evicted = 0;
  const budgets = new ByteBudgets(2, () => evicted++);
  budgets.spend('a', 10, MINUTE, T);
  budgets.spend('b', 10, MINUTE, T);
  budgets.spend('c', 10, MINUTE, T);
  t.equal(budgets.size, 2);
  t.equal(evicted, 1);
  t.equal(budgets.remaining('a', 100, MINUTE, T), 100, 'the oldest starts whole again');
});

t.test('a sweep drops entries whose period ended', async (t) => {
  const budgets = new ByteBudgets();
  budgets.spend('a', 10, MINUTE, T);
  budgets.sweep(T + 2 * MINUTE);
  t.equal(budgets.size, 0);
});
