import t from 'tap';
import { meshGrowth, slowGrowth, slowVolumeAlert } from './slow-volume.ts';
import { CONFIG, DAY, daily, historyOf, MiB, usage } from './test-fixtures.ts';

t.test(
  'an hour at three times the same hour yesterday alerts, though no window stands out',
  async (t) => {
    const normal = daily(1 * MiB, 4 * MiB);
    // Two days as usual, then the last 11 windows (and this one) at 3x.
    const { history, nextMs } = historyOf(2 * DAY + 11, (i) =>
      i >= 2 * DAY ? 3 * normal(i) : normal(i),
    );
    const seen = usage({ responseBytes: 3 * normal(2 * DAY + 11) });
    const alert = slowVolumeAlert(
      seen,
      slowGrowth(seen, history, CONFIG, nextMs),
      1,
      CONFIG,
      nextMs,
    );
    t.match(alert, {
      detector: 'slow-volume',
      severity: 'medium',
      evidence: { spanSeconds: 3600 },
    });
  },
);

t.test('a daily cycle, an hour early, is no alert', async (t) => {
  const normal = daily(1 * MiB, 6 * MiB);
  // Today runs 45 minutes ahead of yesterday.
  const { history, nextMs } = historyOf(2 * DAY + 100, (i) =>
    i >= 2 * DAY ? normal(i + 9) : normal(i),
  );
  const seen = usage({ responseBytes: normal(2 * DAY + 109) });
  t.equal(
    slowVolumeAlert(seen, slowGrowth(seen, history, CONFIG, nextMs), 1, CONFIG, nextMs),
    undefined,
  );
});

t.test('it waits for a day and an hour of history', async (t) => {
  const { history, nextMs } = historyOf(DAY, () => MiB);
  t.equal(slowGrowth(usage({ responseBytes: 50 * MiB }), history, CONFIG, nextMs), undefined);
});

t.test('three times yesterday is no alert on a day the whole mesh grew threefold', async (t) => {
  const normal = daily(1 * MiB, 4 * MiB);
  const { history, nextMs } = historyOf(2 * DAY + 11, (i) =>
    i >= 2 * DAY ? 3 * normal(i) : normal(i),
  );
  const seen = usage({ responseBytes: 3 * normal(2 * DAY + 11) });
  const growth = slowGrowth(seen, history, CONFIG, nextMs)!;
  t.equal(slowVolumeAlert(seen, growth, 3, CONFIG, nextMs), undefined);
  t.match(slowVolumeAlert(seen, growth, 1.2, CONFIG, nextMs), { evidence: { meshGrowth: 1.2 } });
});

t.test(
  "the mesh's growth is its callers' median, so one caller's surge does not move it",
  async (t) => {
    const grew = (factor: number) => ({ recent: factor * 100, yesterday: 100 });
    t.equal(meshGrowth([grew(2.6), grew(1), grew(1.1), grew(0.9)]), 1.05);
    t.equal(meshGrowth([grew(2.5), grew(2.4), grew(2.6), grew(1)]), 2.45);
    t.equal(meshGrowth([grew(3), grew(3)]), 1, 'two callers say nothing about demand');
    t.equal(meshGrowth([grew(0.5), grew(0.6), grew(0.4)]), 1, 'a quiet day lowers no bar');
    t.equal(
      meshGrowth([{ recent: 5, yesterday: 0 }, grew(1), grew(1)]),
      1,
      'no yesterday, no ratio',
    );
  },
);
