import t from 'tap';
import { validateRoutePolicy } from '../../common/policy/validate.ts';
import { authorize } from '../../sidecar/policy/authorize.ts';
import { compilePolicies } from '../../sidecar/policy/compiled-policy.ts';
import {
  cpuSecondsPerKiloRequest,
  type FullResults,
  fullMarkdown,
  type PointResult,
  tableMarkdown,
  tables,
} from './full-report.ts';
import {
  BASELINE,
  DIMENSIONS,
  estimatedSeconds,
  type Point,
  plan,
  pointId,
  pointLoad,
  policyKey,
} from './matrix.ts';
import type { Measured } from './measure.ts';
import { policyDocument } from './targets.ts';
import { measured as measuredRun } from './test-fixtures.ts';

const keys = Object.keys(BASELINE) as (keyof Point)[];
const round = (value: number) => Math.round(value * 1e6) / 1e6;

t.test('each dimension varies one thing from the baseline, and holds the baseline', async (t) => {
  for (const dimension of DIMENSIONS) {
    t.ok(
      dimension.points.some((point) => pointId(point) === pointId(BASELINE)),
      `${dimension.title} holds the baseline`,
    );
    for (const point of dimension.points) {
      const differing = keys.filter(
        (key) => JSON.stringify(point[key]) !== JSON.stringify(BASELINE[key]),
      );
      t.ok(
        differing.every((key) => key === dimension.key),
        `${pointId(point)} differs only in ${dimension.key}`,
      );
    }
  }
  const values = (key: keyof Point) =>
    DIMENSIONS.find((d) => d.key === key)!.points.map((point) => point[key]);
  t.same(values('rate'), [500, 1000, 2000, 'saturation'], "the issue's rates and saturation");
  t.same(values('connections'), [1, 16, 64]);
  t.same(values('responseBytes'), [1024, 65536]);
  t.same(
    values('policy'),
    [
      { routes: 0 },
      { routes: 1 },
      { routes: 1, jwt: true },
      { routes: 1, jwt: true, rateLimit: 'local' },
      { routes: 1, jwt: true, rateLimit: 'global' },
      { routes: 10, jwt: true },
      { routes: 1000, jwt: true },
      { routes: 10000, jwt: true },
    ],
    'mTLS only, authorization without and with a JWT, with a local and a global rate limit, then at 10 to 10,000 routes',
  );
});

t.test('the plan measures the baseline once, with every proxy', async (t) => {
  const planned = plan();
  t.equal(new Set(planned.map((p) => p.id)).size, planned.length, 'no point twice');
  t.equal(planned.length, 14, '4 + 3 + 2 + 8 points less the baseline named 3 more times');
  t.equal(planned.find((p) => p.id === pointId(BASELINE))?.targets, 'every proxy');
  t.same(
    planned.filter((p) => p.targets === 'postern').map((p) => policyKey(p.point.policy)),
    [
      'routes=0',
      'routes=1',
      'routes=1+jwt+rate-limit-local',
      'routes=1+jwt+rate-limit-global',
      'routes=10+jwt',
      'routes=1000+jwt',
      'routes=10000+jwt',
    ],
    'the policy points measure Postern only beside the app',
  );
});

t.test(
  'the plan edits the policy once per policy, and saturates last, on the bench policy',
  async (t) => {
    const planned = plan();
    const policies = planned.map((p) => policyKey(p.point.policy));
    const edits = policies.filter((key, i) => i > 0 && key !== policies[i - 1]);
    t.same(
      edits,
      [
        'routes=0',
        'routes=1',
        'routes=1+jwt+rate-limit-local',
        'routes=1+jwt+rate-limit-global',
        'routes=10+jwt',
        'routes=1000+jwt',
        'routes=10000+jwt',
        'routes=1+jwt',
      ],
      'each policy in turn, then back for saturation',
    );
    t.equal(planned[0]!.id, pointId(BASELINE), 'the baseline comes first');
    t.equal(planned.at(-1)!.point.rate, 'saturation');
    t.ok(
      planned.slice(0, -1).every((p) => p.point.rate !== 'saturation'),
      'no point after saturation',
    );
  },
);

t.test('the defaults keep the full run to between 10 and 15 minutes of load', async (t) => {
  const seconds = estimatedSeconds(
    plan(),
    { rounds: 2, seconds: 8, warmupSeconds: 1 },
    { 'every proxy': 3, postern: 1 },
  );
  t.ok(seconds > 10 * 60 && seconds < 15 * 60, `${(seconds / 60).toFixed(1)} minutes`);
});

t.test(
  "a point's load asks the app for its response size, and saturation is a closed loop",
  async (t) => {
    const timing = { seconds: 8, warmupSeconds: 1 };
    t.match(pointLoad({ ...BASELINE, responseBytes: 65536 }, timing), {
      mode: 'open',
      rate: 1000,
      connections: 16,
      path: '/orders?bytes=65536',
      seconds: 8,
      warmupSeconds: 1,
    });
    t.match(pointLoad({ ...BASELINE, rate: 'saturation' }, timing), {
      mode: 'closed',
      path: '/orders?bytes=1024',
    });
  },
);

const TESTER = 'spiffe://cluster.local/ns/default/sa/tester';

/** The policy for `routes` as the control plane loads it, compiled as the sidecar does. */
function loaded(routes: number) {
  const result = validateRoutePolicy(JSON.parse(policyDocument({ routes })), 'orders.yaml');
  const compiled =
    result.policy &&
    compilePolicies({ version: '1', meshDefault: 'deny', policies: [result.policy] });
  const decision =
    compiled &&
    authorize(
      compiled,
      { method: 'GET', path: '/orders', headers: {}, principal: TESTER },
      Date.now(),
    );
  return { result, compiled, decision };
}

t.test('mTLS only is a valid policy with no routes that admits the tester', async (t) => {
  const { result, compiled, decision } = loaded(0);
  t.same(result.errors, []);
  t.same(result.warnings, []);
  t.equal(compiled!.table.routes.length, 0);
  t.match(decision, { allowed: true, reason: 'no-route-default-allow' });
});

t.test(
  "a grown bench policy is valid, has that many routes, and the request's route stays orders",
  async (t) => {
    for (const routes of [1, 10, 1000]) {
      const { result, compiled, decision } = loaded(routes);
      t.same(result.errors, [], `${routes} routes load`);
      t.equal(compiled!.table.routes.length, routes);
      t.match(decision, { allowed: true, route: 'orders' }, `${routes} routes: orders decides`);
    }
  },
);

/** A matrix point's run: 8 s measured after 1 s of warm-up. */
const measured = (target: string, p50: number, p99: number, extra: Partial<Measured> = {}) =>
  measuredRun(target, p50, p99, {
    requests: 8000,
    warmupRequests: 1000,
    seconds: 8,
    latencyMs: { p50, p90: p50 * 2, p99, p999: p99 * 2, max: p99 * 3 },
    ...extra,
  });

function pointResult(
  point: Point,
  targets: Record<string, Measured[]>,
  policySeconds?: number,
): PointResult {
  return {
    id: pointId(point),
    point,
    ...(policySeconds === undefined ? {} : { policySeconds }),
    targets: Object.entries(targets).map(([target, rounds]) => ({ target, rounds })),
  };
}

/**
 * The baseline and 2,000 rps with two rounds each (Postern's p50 0.5 and 0.7
 * ms over the app's 0.2 and 0.4), saturation, and two policy points, one
 * round each; the other points left out, as an interrupted run would.
 */
function results(overrides: Partial<FullResults> = {}): FullResults {
  const app = [measured('direct', 0.2, 1), measured('direct', 0.4, 3)];
  const postern = [
    measured('postern', 0.5, 4, { proxyCpuSeconds: 2.7, proxyRssMb: 90 }),
    measured('postern', 0.7, 6, { proxyCpuSeconds: 3.6, proxyRssMb: 95 }),
  ];
  const nginx = [
    measured('nginx', 0.3, 2, { proxyCpuSeconds: 0.9, proxyRssMb: 10 }),
    measured('nginx', 0.3, 2, { proxyCpuSeconds: 0.9, proxyRssMb: 10 }),
  ];
  return {
    startedAt: '2026-11-25T18:00:00Z',
    machine: { cpus: 2, node: '24.21.0', pinning: 'proxies on core 0' },
    smoke: false,
    rounds: 2,
    seconds: 8,
    warmupSeconds: 1,
    settleSeconds: 2,
    baseline: BASELINE,
    points: [
      pointResult(BASELINE, { direct: app, postern, nginx }),
      pointResult({ ...BASELINE, rate: 2000 }, { direct: app, postern }),
      pointResult(
        { ...BASELINE, policy: { routes: 0 } },
        { direct: [app[0]!], postern: [postern[0]!] },
        0.4,
      ),
      pointResult(
        { ...BASELINE, policy: { routes: 10_000, jwt: true } },
        {
          direct: [app[0]!],
          postern: [measured('postern', 0.6, 5, { proxyCpuSeconds: 3.6, proxyRssMb: 140 })],
        },
        21.3,
      ),
      pointResult(
        { ...BASELINE, rate: 'saturation' },
        {
          direct: [measured('direct', 1, 3, { requests: 90_000, warmupRequests: 10_000 })],
          postern: [
            measured('postern', 2, 6, {
              requests: 30_000,
              warmupRequests: 5_000,
              proxyCpuSeconds: 5,
            }),
          ],
          nginx: [
            measured('nginx', 1, 3, {
              requests: 50_000,
              warmupRequests: 10_000,
              proxyCpuSeconds: 3,
            }),
          ],
        },
        0.3,
      ),
    ],
    memory: [{ target: 'postern', atStartMb: 60, peakMb: 180 }],
    ...overrides,
  };
}

t.test('CPU per 1,000 requests charges the warm-up CPU to the warm-up requests too', async (t) => {
  // 2.7 CPU-seconds over 8,000 measured and 1,000 warm-up requests.
  t.equal(
    round(cpuSecondsPerKiloRequest(measured('postern', 1, 2, { proxyCpuSeconds: 2.7 }))!),
    0.3,
  );
  t.equal(cpuSecondsPerKiloRequest(measured('direct', 1, 2)), undefined, 'no proxy, no CPU');
});

t.test(
  'a table gives the app its own latency and each proxy what it adds at the same point',
  async (t) => {
    const [rate] = tables(results());
    t.same(
      rate!.rows.map((r) => [r.value, r.target]),
      [
        ['1,000 rps (baseline)', 'direct'],
        ['1,000 rps (baseline)', 'postern'],
        ['1,000 rps (baseline)', 'nginx'],
        ['2,000 rps', 'direct'],
        ['2,000 rps', 'postern'],
        ['saturation (closed loop)', 'direct'],
        ['saturation (closed loop)', 'postern'],
        ['saturation (closed loop)', 'nginx'],
      ],
      'points in the dimension order, a point the run lacks (500 rps) left out',
    );
    const [direct, postern] = rate!.rows;
    t.equal(direct!.addedMs, undefined);
    t.equal(round(direct!.latencyMs.p50), 0.3, 'the median of the rounds');
    t.equal(round(postern!.addedMs!.p50), 0.3, "Postern's median less the app's");
    t.equal(round(postern!.addedMs!.p99), 3);
    t.same(postern!.spreadMs, { p50: [0.5, 0.7], p99: [4, 6] }, "the rounds' own spread");
    const cpu = postern!.cpuSecondsPerKiloRequest!;
    t.same([cpu.median, ...cpu.spread].map(round), [0.35, 0.3, 0.4]);
    t.equal(postern!.rssMb, 95, 'RSS after the last round');
    const md = tableMarkdown(rate!, BASELINE);
    t.match(md, /^## Request rate \(16 connections, 1 KB responses, the bench policy\)$/m);
    t.match(
      md,
      /^\| 1,000 rps \(baseline\) \| direct \| 1000 \| 0\.30 \| 0\.60 \| 2\.00 \| 4\.00 \| 0\.20–0\.40 · 1\.00–3\.00 \| – \| – \| 0 \|$/m,
    );
    t.match(
      md,
      /^\| 1,000 rps \(baseline\) \| postern \| 1000 \| \+0\.30 \| \+0\.60 \| \+3\.00 \| \+6\.00 \| 0\.50–0\.70 · 4\.00–6\.00 \| 0\.350 \| 95 \| 0 \|$/m,
    );
  },
);

t.test(
  "saturation reads as requests per CPU-second, with Postern's share of nginx's",
  async (t) => {
    const [rate] = tables(results());
    // Postern: 5 CPU-seconds for 35,000 requests; nginx: 3 for 60,000.
    const saturated = rate!.rows.filter((r) => r.closedLoop);
    t.same(
      saturated.map((r) => [r.target, r.addedMs, r.latencyMs.p50]),
      [
        ['direct', undefined, 1],
        ['postern', undefined, 2],
        ['nginx', undefined, 1],
      ],
      "a closed loop's latency is its own queue: nothing is subtracted",
    );
    t.match(
      rate!.notes.join('\n'),
      /requests per second of proxy CPU: postern 7000, nginx 20000 \(Postern 35% of nginx's; the budget asks ≥ 50%\)/,
    );
  },
);

t.test('the features table says how long each policy edit took to reach the sidecar', async (t) => {
  const features = tables(results()).find((table) => table.key === 'policy')!;
  t.same(
    [...new Set(features.rows.map((r) => r.value))],
    ['mTLS only', 'mTLS + authz + JWT, 1 route (baseline)', 'mTLS + authz + JWT, 10,000 routes'],
  );
  t.match(
    features.notes.join('\n'),
    /in run order: mTLS only: 0\.4 s; mTLS \+ authz \+ JWT, 10,000 routes: 21\.3 s; mTLS \+ authz \+ JWT, 1 route \(back, for saturation\): 0\.3 s\.$/,
  );
  const md = tableMarkdown(features, BASELINE);
  t.match(md, /^## Features on the path \(1,000 rps open loop, 16 connections, 1 KB responses\)$/m);
  t.match(
    md,
    /^\| mTLS only \| postern \| 1000 \| \+0\.30 \| .* \| – \| 0\.300 \| 90 \| 0 \|$/m,
    'one round: no spread',
  );
});

t.test(
  'the report explains mTLS only and gives each proxy its RSS at ready, after each point and at peak',
  async (t) => {
    const r = results();
    const md = fullMarkdown(r, tables(r));
    t.match(md, /no switch to turn authorization off \(it fails closed\)/);
    t.match(md, /2 interleaved rounds of 1 s warm-up then 8 s measured/);
    t.match(md, /^\| postern \| 60 \| 90–140 \| 180 \|$/m);
    t.notMatch(md, /smoke run/);
    t.equal(md.match(/^## /gm)?.length, DIMENSIONS.length + 1, 'a table per dimension, and memory');
    t.match(
      fullMarkdown({ ...r, smoke: true }, tables(r)),
      /\*\*A smoke run\*\*.*measures nothing/,
    );
  },
);
