import t from 'tap';
import { type BenchResults, budgetLines, requestsPerCpuSecond } from './budget.ts';
import { combineRounds } from './measure.ts';
import { budgetTable, latencyChart, markdownReport } from './report.ts';
import { measured } from './test-fixtures.ts';

const nodeFloor = {
  steady: measured('node floor', 0.25, 1.6, { proxyCpuSeconds: 1.2, proxyRssMb: 50 }),
  cold: measured('node floor', 0.3, 4),
  rss: { atStartMb: 45, steadyMb: 52, afterSaturationMb: 75 },
};

/**
 * A run where Postern adds 0.3 ms at p50 and 1.5 ms at p99 and uses 2.4
 * CPU-seconds over 12 s at 1,000 rps; the Node floor adds 0.15 ms and 1.1 ms
 * and uses 1.2 CPU-seconds. Every figure of the floor differs from Postern's,
 * so a column that reads the wrong one shows.
 */
function results(overrides: Partial<BenchResults> = {}): BenchResults {
  return {
    startedAt: '2026-11-25T16:00:00Z',
    machine: { cpus: 2, node: '24.21.0', pinning: 'proxies on core 0' },
    load: { rate: 1000, connections: 16, responseBytes: 1024, seconds: 10, warmupSeconds: 2 },
    direct: measured('direct', 0.1, 0.5),
    postern: measured('postern', 0.4, 2.0, { proxyCpuSeconds: 2.4, proxyRssMb: 70 }),
    nginx: measured('nginx', 0.2, 0.8, { proxyCpuSeconds: 1, proxyRssMb: 10 }),
    cold: measured('postern', 0.5, 8),
    nodeFloor,
    saturation: {
      direct: measured('direct', 1, 3, { requests: 90_000 }),
      nodeFloor: measured('node floor', 1.5, 4, { requests: 40_000, proxyCpuSeconds: 5 }),
      postern: measured('postern', 2, 6, { requests: 30_000, proxyCpuSeconds: 5 }),
      nginx: measured('nginx', 1, 3, { requests: 50_000, proxyCpuSeconds: 5 }),
    },
    rss: { atStartMb: 60, steadyMb: 70, afterSaturationMb: 100 },
    decision: [
      { routes: 10, compileMs: 1, nsPerDecision: 300 },
      { routes: 1000, compileMs: 10, nsPerDecision: 400 },
      { routes: 10_000, compileMs: 100, nsPerDecision: 700 },
    ],
    ...overrides,
  };
}

t.test(
  'each budget line compares the added cost over the direct call with DESIGN.md',
  async (t) => {
    const lines = budgetLines(results());
    const byWhat = Object.fromEntries(lines.map((l) => [l.what, l]));
    t.match(byWhat['added latency p50'], { measured: '0.30 ms', pass: true });
    t.match(byWhat['added latency p99'], { measured: '1.50 ms', pass: true });
    t.match(byWhat['sidecar CPU per 1,000 rps'], { measured: '0.200 core', pass: true });
    t.match(byWhat['first 10 s after ready: added p99'], { measured: '7.50 ms', pass: true });
    t.match(byWhat['saturation: requests per core-second vs nginx'], {
      measured: /^60% /,
      pass: true,
    });
    t.match(byWhat['authorization decision, 10 → 10,000 routes'], { pass: true });
    t.equal(lines.length, 8, 'every line of the budget');
  },
);

t.test(
  "the Node floor column gives the floor's value on the same line, never judged",
  async (t) => {
    const lines = budgetLines(results());
    const floorOf = Object.fromEntries(lines.map((l) => [l.what, l.nodeFloor]));
    t.same(floorOf, {
      'added latency p50': '0.15 ms',
      'added latency p99': '1.10 ms',
      'sidecar CPU per 1,000 rps': '0.100 core',
      'sidecar RSS steady at 1000 rps': '52 MB',
      'sidecar RSS after a saturation run': '75 MB',
      'first 10 s after ready: added p99': '3.50 ms',
      'saturation: requests per core-second vs nginx': '80% (8000 vs 10000)',
      'authorization decision, 10 → 10,000 routes': '–',
    });
    t.match(
      budgetTable(lines),
      /\| added latency p50 \| ≤ 0\.50 ms \| 0\.30 ms \| PASS \| 0\.15 ms \|/,
    );
    const slowFloor = budgetLines(
      results({
        nodeFloor: {
          ...nodeFloor,
          steady: measured('node floor', 5, 50, { proxyCpuSeconds: 12 }),
        },
      }),
    );
    t.same(
      slowFloor.map((l) => l.pass),
      lines.map((l) => l.pass),
      "PASS/FAIL is Postern's alone, however the floor does",
    );
  },
);

t.test('a smoke run, which measures neither the floor nor saturation, says so', async (t) => {
  const {
    saturation: _,
    nodeFloor: __,
    ...smoke
  } = results({
    rss: { atStartMb: 60, steadyMb: 70 },
  });
  const lines = budgetLines(smoke);
  t.same(
    lines.map((l) => l.nodeFloor),
    [...Array(7).fill('not measured'), '–'],
  );
  t.equal(lines.find((l) => l.what === 'added latency p50')!.pass, true);
  const md = markdownReport(smoke, lines);
  t.notMatch(md, /^\| node floor \|/m, 'no floor rows');
  t.notMatch(md, /Node floor (cold|RSS)/);
  t.equal(latencyChart(smoke).match(/<rect [^>]*><title>/g)?.length, 3 * 4);
});

t.test('a line over budget fails, and one the run did not measure is n/a', async (t) => {
  const { saturation: _, ...withoutSaturation } = results({
    postern: measured('postern', 0.9, 30, { proxyCpuSeconds: 4, proxyRssMb: 300 }),
    rss: { atStartMb: 120, steadyMb: 300 },
  });
  const lines = budgetLines(withoutSaturation);
  const byWhat = Object.fromEntries(lines.map((l) => [l.what, l]));
  t.equal(byWhat['added latency p50']!.pass, false);
  t.equal(byWhat['added latency p99']!.pass, false);
  t.equal(byWhat['sidecar RSS steady at 1000 rps']!.pass, false);
  t.equal(byWhat['sidecar RSS after a saturation run']!.pass, undefined);
  t.equal(byWhat['saturation: requests per core-second vs nginx']!.pass, undefined);
  t.match(budgetTable(lines), /\| added latency p50 \| ≤ 0\.50 ms \| 0\.80 ms \| FAIL \|/);
  t.match(
    budgetTable(lines),
    /\| sidecar RSS after a saturation run \| ≤ 120 MB \| not measured \| n\/a \|/,
  );
});

t.test(
  'the report holds the budget, every target and the chart a bar per target and percentile',
  async (t) => {
    const r = results();
    const md = markdownReport(r, budgetLines(r));
    t.match(md, /## Budget/);
    t.match(
      md,
      /\| postern \| 0\.40 \| 0\.60 \| 2\.00 \| 4\.00 \| 0\.30 \| 0\.45 \| 1\.50 \| 3\.00 \|/,
    );
    t.match(md, /\| nginx \|/);
    t.match(
      md,
      /\| node floor \| 0\.25 \| 0\.38 \| 1\.60 \| 3\.20 \| 0\.15 \| 0\.22 \| 1\.10 \| 2\.20 \| 0\.100 \| 50 \| 0 \|/,
    );
    t.match(md, /^Node floor: /m, 'says what the floor is');
    t.match(md, /Node floor cold \(first 10 s after ready, no warm-up\): p50 0\.30, p99 4\.00/);
    t.match(md, /Node floor RSS: 45 MB at ready, 52 MB steady, 75 MB after saturation\./);
    t.match(md, /## Saturation/);
    t.match(md, /\| node floor \| 1000 \| 8000 \| 4\.00 \| 0 \|/);
    const svg = latencyChart(r);
    t.match(svg, /^<svg /);
    t.equal(svg.match(/<rect [^>]*><title>/g)?.length, 4 * 4);
  },
);

t.test('rounds combine into medians, with the spread of p50, p99 and CPU', async (t) => {
  const combined = combineRounds([
    measured('postern', 0.4, 2, { proxyCpuSeconds: 3 }),
    measured('postern', 0.2, 9, { proxyCpuSeconds: 2 }),
    measured('postern', 0.3, 4, { proxyCpuSeconds: 4 }),
  ]);
  t.equal(combined.latencyMs.p50, 0.3);
  t.equal(combined.latencyMs.p99, 4);
  t.equal(combined.proxyCpuSeconds, 3);
  t.same(combined.spread, { p50: [0.2, 0.4], p99: [2, 9], proxyCpuSeconds: [2, 4] });
  t.equal(combined.requests, 30_000);
  t.equal(combined.rounds, 3);
});

t.test('requests per CPU-second counts the warm-up requests its CPU reading spans', (t) => {
  const run = { ...measured('postern', 1, 2), requests: 5_000, proxyCpuSeconds: 1 };
  t.equal(requestsPerCpuSecond(run), 5_000);
  t.equal(requestsPerCpuSecond({ ...run, warmupRequests: 1_000 }), 6_000);
  t.end();
});
