import { createServer, type Server } from 'node:http';
import t from 'tap';
import { request } from 'undici';
import { listen } from '../../common/listen.ts';
import { adminConfig, adminMetrics, eventually, startTestMesh, untilReady } from '../helpers.ts';

const FRONTEND = 'spiffe://cluster.local/ns/shop/sa/frontend';
const POLICY = `
apiVersion: postern.dev/v1alpha1
kind: RoutePolicy
metadata: { name: orders-api, namespace: shop }
spec:
  selector: { matchLabels: { app: orders } }
  routes:
    - name: all
      match: { path: { prefix: / } }
      allow: [{ principals: ["${FRONTEND}"] }]
`;

interface Replica {
  readonly name: string;
  served: number;
  readonly server: Server;
  readonly port: number;
}

/** An orders app that names itself and answers after `delayMs`. */
async function replicaApp(
  t: { teardown(fn: () => unknown): void },
  name: string,
  delayMs = 0,
): Promise<Replica> {
  const replica = { name, served: 0 } as Replica & { served: number };
  const server = createServer((req, res) => {
    req.resume();
    replica.served++;
    setTimeout(() => {
      res.writeHead(200, { 'content-type': 'application/json' });
      res.end(JSON.stringify({ replica: name }));
    }, delayMs);
  });
  const port = await listen(server, 0, '127.0.0.1');
  t.teardown(() => {
    server.closeAllConnections();
    server.close();
  });
  return Object.assign(replica, { server, port });
}

/** Takes an app down: its sidecar's connections are refused from now on (503 to callers). */
function stop(replica: Replica): void {
  replica.server.closeAllConnections();
  replica.server.close();
}

async function meshWithReplicas(
  t: Parameters<typeof startTestMesh>[0],
  apps: readonly Replica[],
  now?: () => number,
) {
  const mesh = await startTestMesh(t, POLICY);
  for (const app of apps) {
    const sidecar = await mesh.startSidecar({
      workload: 'orders',
      namespace: 'shop',
      appPort: app.port,
    });
    await untilReady(sidecar.adminPort);
  }
  const frontend = await mesh.startSidecar({
    workload: 'frontend',
    namespace: 'shop',
    appPort: 1,
    ...(now ? { now } : {}),
  });
  await untilReady(frontend.adminPort);
  await eventually(
    async () => (await adminConfig(frontend.adminPort)).endpoints?.length === apps.length,
  );
  const call = async (method = 'GET') => {
    const response = await request(`http://127.0.0.1:${frontend.outboundPort}/orders`, {
      method,
      headers: { host: 'orders' },
      ...(method === 'POST' ? { body: '{}' } : {}),
    });
    const text = await response.body.text();
    return { status: response.statusCode, text };
  };
  return { frontend, call };
}

/** `count` calls, `concurrency` at a time. */
async function load<T>(count: number, concurrency: number, call: () => Promise<T>): Promise<T[]> {
  const results: T[] = [];
  let next = 0;
  await Promise.all(
    Array.from({ length: concurrency }, async () => {
      while (next < count) {
        next++;
        results.push(await call());
      }
    }),
  );
  return results;
}

t.test(
  'a slow replica of three gets less of the traffic (least loaded of two choices)',
  async (t) => {
    const apps = [
      await replicaApp(t, 'a'),
      await replicaApp(t, 'b'),
      await replicaApp(t, 'slow', 100),
    ];
    const { call } = await meshWithReplicas(t, apps);
    const results = await load(300, 12, () => call());
    t.ok(
      results.every((r) => r.status === 200),
      'every call answered',
    );
    const [a, b, slow] = apps.map((app) => app.served) as [number, number, number];
    t.comment(`served: a ${a}, b ${b}, slow ${slow}`);
    t.ok(
      slow < Math.min(a, b) / 2,
      `the slow replica served less than half of either other (${slow} vs ${a}, ${b})`,
    );
  },
);

t.test(
  'a replica whose app dies mid-traffic: GETs are retried elsewhere, POSTs are not, and the endpoint is ejected and later probed back',
  async (t) => {
    let offset = 0;
    const now = () => Date.now() + offset;
    const apps = [await replicaApp(t, 'a'), await replicaApp(t, 'b'), await replicaApp(t, 'c')];
    const { frontend, call } = await meshWithReplicas(t, apps, now);
    t.ok(
      (await load(30, 3, () => call())).every((r) => r.status === 200),
      'all up: all answered',
    );

    stop(apps[2]!);
    const gets = await load(60, 3, () => call());
    t.same(
      gets.filter((r) => r.status !== 200),
      [],
      'every GET answered: the failures were retried on another replica',
    );
    const config = await adminConfig(frontend.adminPort);
    const ejected = config.endpoints!.filter((e) => e.state === 'ejected');
    t.equal(ejected.length, 1, 'the dead replica is ejected');
    t.match(
      await adminMetrics(frontend.adminPort),
      /postern_upstream_ejections_total\{service="shop\/orders",endpoint="[^"]+"\} 1/,
    );

    // Ejected, it takes no traffic, so POSTs (never retried) all succeed now.
    t.ok((await load(20, 2, () => call('POST'))).every((r) => r.status === 200));

    // After the ejection interval it is probed again; still dead, a POST that reaches it fails (not retried).
    offset += 31_000;
    const posts = await load(30, 1, () => call('POST'));
    const failedPosts = posts.filter((r) => r.status !== 200);
    t.ok(
      failedPosts.length > 0,
      'a POST that reached the dead replica failed: POSTs are not retried',
    );
    t.ok(
      failedPosts.every((r) => r.status === 503),
      'with 503 and the sidecar saying why',
    );
    t.match(
      await adminMetrics(frontend.adminPort),
      /postern_upstream_retries_total\{service="shop\/orders",outcome="retried"\} \d+/,
    );

    // The app comes back on its port: once its (longer) ejection is over, the
    // endpoint is probed, answers, and takes its share again.
    const dead = apps[2]!;
    const revived = createServer((req, res) => {
      req.resume();
      dead.served++;
      res.writeHead(200, { 'content-type': 'application/json' });
      res.end(JSON.stringify({ replica: dead.name }));
    });
    await listen(revived, dead.port, '127.0.0.1');
    t.teardown(() => {
      revived.closeAllConnections();
      revived.close();
    });
    const servedBefore = dead.served;
    offset += 301_000; // past the longest ejection (5 minutes)
    const after = await load(60, 3, () => call());
    t.ok(
      after.every((r) => r.status === 200),
      'every call answered',
    );
    t.ok(
      dead.served > servedBefore,
      `the revived replica serves again (${dead.served - servedBefore} of 60)`,
    );
    await eventually(async () =>
      (await adminConfig(frontend.adminPort)).endpoints!.every((e) => e.state === 'active'),
    );
    t.pass('and every endpoint is active');
  },
);

t.test('during a full outage the retry budget caps retries', async (t) => {
  const apps = [await replicaApp(t, 'a'), await replicaApp(t, 'b'), await replicaApp(t, 'c')];
  const { frontend, call } = await meshWithReplicas(t, apps);
  for (const app of apps) stop(app);
  const results = await load(400, 20, () => call());
  t.ok(
    results.every((r) => r.status === 503),
    'every call fails: nothing is up',
  );
  const metrics = await adminMetrics(frontend.adminPort);
  const count = (outcome: string) =>
    Number(
      new RegExp(
        `postern_upstream_retries_total\\{service="shop/orders",outcome="${outcome}"\\} (\\d+)`,
      ).exec(metrics)?.[1] ?? 0,
    );
  // 20% of 400 requests plus 10 a second over the 10 s window: at most 180 of the 800 retries asked for.
  t.ok(count('retried') <= 180, `retries ${count('retried')} within the budget`);
  t.ok(count('budget-exhausted') > 0, `and the rest refused (${count('budget-exhausted')})`);
});
