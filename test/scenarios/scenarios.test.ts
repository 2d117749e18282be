import { readFile } from 'node:fs/promises';
import { resolve } from 'node:path';
import t from 'tap';
import { type Score, scoreAll, table } from './score.ts';

/**
 * The detectors' scores on the labelled scenarios (generate.ts), replayed
 * through `postern usage replay` as a process. The thresholds are what a
 * security team can hold us to: benign days (cycles, autoscaling, a
 * rollout, an allowed batch job) raise nothing; every attack the detectors
 * are built for is caught, within the window it happened in (5 minutes) or,
 * low and slow, within an hour and a half; nine alerts in ten are real.
 * slow-drip (40% more, all day) is below what slow-volume is tuned for and
 * stays in the suite as the known miss.
 */
const WITHIN_A_WINDOW = 5 * 60_000;
const TIME_TO_DETECT: Record<string, number> = {
  'bulk-dump': WITHIN_A_WINDOW,
  'low-and-slow': 90 * 60_000,
  enumeration: WITHIN_A_WINDOW,
  'lateral-movement': WITHIN_A_WINDOW,
  egress: WITHIN_A_WINDOW,
  spread: WITHIN_A_WINDOW,
  'off-workload': WITHIN_A_WINDOW,
};
const KNOWN_MISSES = new Set(['slow-drip']);

let scores: Score[] = [];

t.before(async () => {
  scores = await scoreAll();
});

t.test('no benign scenario raises an alert', async (t) => {
  for (const score of scores.filter((s) => s.scenario.kind === 'benign')) {
    t.equal(score.alerts.length, 0, `${score.scenario.name}: ${score.scenario.description}`);
  }
});

t.test('every attack the detectors are built for is caught, in time', async (t) => {
  for (const score of scores.filter((s) => s.scenario.kind === 'attack')) {
    const name = score.scenario.name;
    if (KNOWN_MISSES.has(name)) continue;
    t.equal(score.recall, 1, `${name} is detected`);
    t.ok(
      score.timeToDetectMs !== undefined && score.timeToDetectMs <= TIME_TO_DETECT[name]!,
      `${name} is detected within ${TIME_TO_DETECT[name]! / 60_000} min (took ${(score.timeToDetectMs ?? Number.NaN) / 60_000})`,
    );
  }
  t.same(
    Object.keys(TIME_TO_DETECT).sort(),
    scores
      .filter((s) => s.scenario.kind === 'attack' && !KNOWN_MISSES.has(s.scenario.name))
      .map((s) => s.scenario.name)
      .sort(),
    'every attack scenario has a time-to-detect bound',
  );
});

t.test('at least nine alerts in ten point at a real incident', async (t) => {
  const alerts = scores.reduce((n, s) => n + s.alerts.length, 0);
  const real = scores.reduce((n, s) => n + s.truePositives, 0);
  t.ok(real / alerts >= 0.9, `precision ${real}/${alerts}`);
});

t.test("the README's table is this run's", async (t) => {
  const readme = await readFile(resolve(import.meta.dirname, '../../README.md'), 'utf8');
  t.ok(
    readme.includes(table(scores)),
    'README.md holds the table `npm run scenarios` prints (regenerate it after changing a detector)',
  );
});
