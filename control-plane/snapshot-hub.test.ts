import t from 'tap';
import type { HttpRoute } from '../common/policy/httproute-schema.ts';
import { principalMatches } from '../common/policy/principals.ts';
import type { RoutePolicy } from '../common/policy/schema.ts';
import type { Snapshot } from '../common/wire.ts';
import { admittedCallers, SnapshotHub, type Subscriber } from './snapshot-hub.ts';

const FRONTEND = 'spiffe://cluster.local/ns/shop/sa/frontend';
const ORDERS = 'spiffe://cluster.local/ns/shop/sa/orders';
const OTHER = 'spiffe://cluster.local/ns/ops/sa/other';

function policy(spec: Partial<RoutePolicy['spec']>): RoutePolicy {
  return {
    apiVersion: 'postern.dev/v1alpha1',
    kind: 'RoutePolicy',
    metadata: { name: 'p', namespace: 'shop' },
    spec: { routes: [], ...spec },
  } as RoutePolicy;
}

t.test(
  'the callers a workload admits are its allow entries’ principals, never its deny entries’',
  async (t) => {
    const callers = admittedCallers(
      [
        policy({
          routes: [
            { name: 'a', allow: [{ principals: [FRONTEND] }], deny: [{ principals: [OTHER] }] },
            { name: 'b', allow: [{ principals: ['spiffe://cluster.local/ns/ops/*'] }] },
          ],
        }),
      ],
      'deny',
    );
    t.ok(principalMatches(callers, FRONTEND));
    t.ok(principalMatches(callers, OTHER), 'through the namespace wildcard of route b');
    t.notOk(principalMatches(callers, ORDERS));
  },
);

t.test('anybody may call where a policy admits by other means than principals', async (t) => {
  const cases: [string, Partial<RoutePolicy['spec']>][] = [
    ['audit mode', { mode: 'audit', routes: [{ name: 'a', allow: [{ principals: [FRONTEND] }] }] }],
    ['defaultAction allow', { defaultAction: 'allow' }],
    ['a JWT-only entry', { routes: [{ name: 'a', allow: [{ jwt: { claims: { scope: 'x' } } }] }] }],
    ['a sourceIPs-only entry', { routes: [{ name: 'a', allow: [{ sourceIPs: ['10.0.0.0/8'] }] }] }],
  ];
  for (const [what, spec] of cases) {
    t.ok(principalMatches(admittedCallers([policy(spec)], 'deny'), ORDERS), what);
  }
  t.ok(
    principalMatches(admittedCallers([], 'allow-authenticated'), ORDERS),
    'unselected, mesh default allow-authenticated',
  );
  t.notOk(principalMatches(admittedCallers([], 'deny'), ORDERS), 'unselected, mesh default deny');
});

/** A subscriber that records what it is sent. */
function subscriber(workload: string, spiffeId: string, address?: string) {
  const sent: Snapshot[] = [];
  const closed: string[] = [];
  const sub: Subscriber = {
    workload,
    namespace: 'shop',
    labels: { app: workload },
    address,
    spiffeId,
    certificateNotBeforeMs: 0,
    send: (s) => sent.push(s),
    close: (reason) => closed.push(reason),
  };
  return { sub, sent, closed };
}

t.test('a revoked identity’s watches are ended and leave the registry', async (t) => {
  const hub = new SnapshotHub(1, 'allow-authenticated', { minFanOutIntervalMs: 0 });
  t.teardown(() => hub.close());
  const orders = subscriber('orders', ORDERS, '127.0.0.1:1');
  const frontend = subscriber('frontend', FRONTEND);
  hub.subscribe(orders.sub);
  hub.subscribe(frontend.sub);
  await new Promise((resolve) => setTimeout(resolve, 5));
  t.equal(frontend.sent.at(-1)?.registry.length, 1);
  t.equal(
    hub.endWhere((s) => s.spiffeId === ORDERS),
    1,
  );
  t.same(orders.closed, ['the workload identity was revoked']);
  await new Promise((resolve) => setTimeout(resolve, 5));
  t.same(frontend.sent.at(-1)?.registry, []);
});

t.test(
  'an ack is recorded against the watch of its identity and address, and leaves with it',
  async (t) => {
    const hub = new SnapshotHub(1, 'deny', { minFanOutIntervalMs: 0 });
    t.teardown(() => hub.close());
    const caller = { spiffeId: ORDERS, workload: 'orders', namespace: 'shop' };
    const ack = (address: string | undefined, hash: string) =>
      hub.recordAck(caller, { version: '1.1', hash, status: 'applied', address }, new Date());
    const unsubscribe = hub.subscribe(subscriber('orders', ORDERS, '10.0.0.1:15006').sub);
    hub.subscribe(subscriber('orders', ORDERS, '10.0.0.2:15006').sub);
    hub.subscribe(subscriber('frontend', FRONTEND, '10.0.0.3:15006').sub);
    t.ok(ack('10.0.0.1:15006', 'a'));
    t.ok(ack('10.0.0.2:15006', 'b'));
    t.notOk(ack('10.0.0.3:15006', 'c'), "another identity's address");
    t.notOk(ack(undefined, 'd'), 'no watch without an address');
    t.same(
      hub.acks.map((a) => [a.address, a.hash]),
      [
        ['10.0.0.1:15006', 'a'],
        ['10.0.0.2:15006', 'b'],
      ],
    );
    unsubscribe();
    t.notOk(ack('10.0.0.1:15006', 'e'), 'the watch is gone');
    t.same(
      hub.acks.map((a) => a.address),
      ['10.0.0.2:15006'],
    );
  },
);

t.test(
  'registry changes within the fan-out interval reach a subscriber as one snapshot',
  async (t) => {
    const hub = new SnapshotHub(1, 'allow-authenticated', { minFanOutIntervalMs: 200 });
    t.teardown(() => hub.close());
    const frontend = subscriber('frontend', FRONTEND);
    hub.subscribe(frontend.sub);
    await new Promise((resolve) => setTimeout(resolve, 250));
    const before = frontend.sent.length;
    for (let i = 1; i <= 20; i++) hub.subscribe(subscriber('orders', ORDERS, `127.0.0.1:${i}`).sub);
    await new Promise((resolve) => setTimeout(resolve, 450));
    t.ok(
      frontend.sent.length - before <= 2,
      `${frontend.sent.length - before} snapshots for 20 registrations`,
    );
    t.equal(frontend.sent.at(-1)?.registry.length, 20);
  },
);

t.test(
  'a replica is its pod IP: a second watch from it replaces the first whatever port it names (a pod could hold one watch per port; review)',
  async (t) => {
    const hub = new SnapshotHub(1, 'deny', { minFanOutIntervalMs: 0, maxWatchesPerIdentity: 2 });
    t.teardown(() => hub.close());
    const first = subscriber('orders', ORDERS, '10.0.0.5:1');
    hub.subscribe(first.sub);
    for (let port = 2; port <= 10; port++)
      hub.subscribe(subscriber('orders', ORDERS, `10.0.0.5:${port}`).sub);
    t.same(first.closed, ['replaced by a newer watch from the same workload and address']);
    hub.subscribe(subscriber('orders', ORDERS, '10.0.0.6:1').sub);
    t.pass('one watch per pod, so the bound of 2 still admits a second pod');
    // On loopback many sidecars share the IP: there the whole address is the replica.
    const local = subscriber('svc', ORDERS, '127.0.0.1:1');
    hub.subscribe(local.sub);
    hub.subscribe(subscriber('svc', ORDERS, '127.0.0.1:2').sub);
    t.same(local.closed, []);
  },
);

t.test(
  'the watch bound is per workload identity: another workload on the same service account is not locked out (review)',
  async (t) => {
    const hub = new SnapshotHub(1, 'deny', { minFanOutIntervalMs: 0, maxWatchesPerIdentity: 1 });
    t.teardown(() => hub.close());
    const SHARED = 'spiffe://cluster.local/ns/shop/sa/default';
    hub.subscribe(subscriber('payments', SHARED, '10.0.0.1:1').sub);
    t.throws(() => hub.subscribe(subscriber('payments', SHARED, '10.0.0.2:1').sub), {
      code: 'POSTERN_WATCH_LIMIT',
    });
    t.doesNotThrow(() => hub.subscribe(subscriber('frontend', SHARED, '10.0.0.3:1').sub));
  },
);

t.test(
  'a workload receives exactly the policies that select it, in the order they were given',
  async (t) => {
    const named = (name: string, namespace: string, matchLabels?: Record<string, string>) =>
      ({
        apiVersion: 'postern.dev/v1alpha1',
        kind: 'RoutePolicy',
        metadata: { name, namespace },
        spec: { ...(matchLabels ? { selector: { matchLabels } } : {}), routes: [] },
      }) as unknown as RoutePolicy;
    const hub = new SnapshotHub(1, 'deny', { minFanOutIntervalMs: 0 });
    t.teardown(() => hub.close());
    hub.setPolicies([
      named('whole-namespace', 'shop'),
      named('frontend-only', 'shop', { app: 'frontend' }),
      named('orders-backend', 'shop', { tier: 'backend', app: 'orders' }),
      named('orders-canary', 'shop', { app: 'orders', track: 'canary' }),
      named('other-namespace', 'billing'),
      named('orders-by-app', 'shop', { app: 'orders' }),
    ]);
    const sent: Snapshot[] = [];
    hub.subscribe({
      workload: 'orders',
      namespace: 'shop',
      labels: { app: 'orders', tier: 'backend' },
      address: undefined,
      spiffeId: ORDERS,
      certificateNotBeforeMs: 0,
      send: (s) => sent.push(s),
      close: () => {},
    });
    t.same(
      sent[0]!.policies.map((p) => p.metadata.name),
      ['whole-namespace', 'orders-backend', 'orders-by-app'],
    );
  },
);

t.test(
  'a new trust bundle reaches every subscriber, and the hub knows which sidecars have not acked it yet',
  async (t) => {
    const hub = new SnapshotHub(1, 'deny', { minFanOutIntervalMs: 0 });
    t.teardown(() => hub.close());
    hub.setTrustBundle('one root');
    const orders = subscriber('orders', ORDERS, '10.0.0.1:15006');
    const frontend = subscriber('frontend', FRONTEND, '10.0.0.2:15006');
    hub.subscribe(orders.sub);
    hub.subscribe(frontend.sub);
    t.equal(orders.sent.at(-1)?.trustBundle, 'one root', 'the first snapshot carries the bundle');

    const sentBefore = orders.sent.length;
    hub.setTrustBundle('two roots');
    await new Promise((resolve) => setTimeout(resolve, 5));
    t.equal(orders.sent.length, sentBefore + 1, 'the bundle alone is a change worth a snapshot');
    t.equal(orders.sent.at(-1)?.trustBundle, 'two roots');
    t.equal(frontend.sent.at(-1)?.trustBundle, 'two roots');

    const ack = (workload: string, spiffeId: string, address: string, trustBundle: string) =>
      hub.recordAck(
        { spiffeId, workload, namespace: 'shop' },
        { version: hub.version, hash: 'h', status: 'applied', address, trustBundle },
        new Date(),
      );
    ack('orders', ORDERS, '10.0.0.1:15006', 'id of two roots');
    ack('frontend', FRONTEND, '10.0.0.2:15006', 'id of one root');
    t.same(hub.unconfirmed('id of two roots'), [
      {
        workload: 'frontend',
        namespace: 'shop',
        spiffeId: FRONTEND,
        address: '10.0.0.2:15006',
        trustBundle: 'id of one root',
      },
    ]);
    ack('frontend', FRONTEND, '10.0.0.2:15006', 'id of two roots');
    t.same(hub.unconfirmed('id of two roots'), []);
    t.same(
      hub.acks.map((a) => a.trustBundle),
      ['id of two roots', 'id of two roots'],
      'GET /v1/acks shows the bundle each sidecar verifies with',
    );
  },
);

t.test(
  'a workload with a global rate limit is told the Redis and how many replicas share it; others are not',
  async (t) => {
    const hub = new SnapshotHub(1, 'deny', { minFanOutIntervalMs: 0, redisUrl: 'redis://r:6379' });
    t.teardown(() => hub.close());
    const policy = (app: string, scope: 'local' | 'global') =>
      ({
        apiVersion: 'postern.dev/v1alpha1',
        kind: 'RoutePolicy',
        metadata: { name: app, namespace: 'shop' },
        spec: {
          selector: { matchLabels: { app } },
          routes: [{ name: 'r', rateLimit: { requests: 10, per: '1s', scope } }],
        },
      }) as RoutePolicy;
    hub.setPolicies([policy('orders', 'global'), policy('frontend', 'local')]);
    const first = subscriber('orders', ORDERS, '10.0.0.1:15006');
    const second = subscriber('orders', ORDERS, '10.0.0.2:15006');
    const frontend = subscriber('frontend', FRONTEND, '10.0.0.3:15006');
    hub.subscribe(first.sub);
    hub.subscribe(frontend.sub);
    t.same(first.sent.at(-1)?.rateLimit, { redis: 'redis://r:6379', replicas: 1 });
    hub.subscribe(second.sub);
    await new Promise((resolve) => setTimeout(resolve, 5));
    t.same(
      first.sent.at(-1)?.rateLimit,
      { redis: 'redis://r:6379', replicas: 2 },
      'a replica came',
    );
    t.same(second.sent.at(-1)?.rateLimit, { redis: 'redis://r:6379', replicas: 2 });
    t.equal(frontend.sent.at(-1)?.rateLimit, undefined, 'local limits need neither');
  },
);

t.test(
  "a gateway's snapshot carries the HTTPRoutes whose parentRefs name it, and no other workload's does",
  async (t) => {
    const hub = new SnapshotHub(1, 'allow-authenticated', { minFanOutIntervalMs: 0 });
    t.teardown(() => hub.close());
    const edge = subscriber('edge', 'spiffe://cluster.local/ns/shop/sa/edge');
    const orders = subscriber('orders', ORDERS);
    hub.subscribe(edge.sub);
    hub.subscribe(orders.sub);
    const route = (
      name: string,
      parent: { name: string; namespace?: string },
      namespace = 'shop',
    ) =>
      ({
        apiVersion: 'gateway.networking.k8s.io/v1',
        kind: 'HTTPRoute',
        metadata: { name, namespace },
        spec: { parentRefs: [parent], rules: [{ backendRefs: [{ name: 'orders' }] }] },
      }) as HttpRoute;
    hub.setPolicies(
      [],
      [
        route('to-edge', { name: 'edge' }),
        route('elsewhere', { name: 'edge', namespace: 'ops' }),
        // Another team's route naming shop's gateway: routes attach within the gateway's namespace only.
        route('hijack', { name: 'edge', namespace: 'shop' }, 'marketing'),
      ],
    );
    await new Promise((resolve) => setTimeout(resolve, 5));
    t.same(
      edge.sent.at(-1)?.httpRoutes?.map((r) => r.metadata.name),
      ['to-edge'],
      'a parentRef in another namespace names another gateway',
    );
    t.equal(orders.sent.at(-1)?.httpRoutes, undefined);
    const before = edge.sent.at(-1)!.hash;
    hub.setPolicies([], []);
    await new Promise((resolve) => setTimeout(resolve, 5));
    t.equal(edge.sent.at(-1)?.httpRoutes, undefined);
    t.not(edge.sent.at(-1)!.hash, before, 'the routes are part of the content hash');
  },
);

t.test(
  'in a cluster the registry is what discovery found, plus token-bound registrations; a pod’s own registration adds nothing',
  async (t) => {
    const hub = new SnapshotHub(1, 'allow-authenticated', { minFanOutIntervalMs: 0 });
    t.teardown(() => hub.close());
    const frontend = subscriber('frontend', FRONTEND);
    hub.subscribe(frontend.sub);
    const pod = subscriber('orders', ORDERS, '10.0.0.5:15006');
    hub.subscribe({ ...pod.sub, via: 'pod' });
    const vm = subscriber('billing', OTHER, '192.0.2.10:15006');
    hub.subscribe({ ...vm.sub, via: 'bootstrap-token' });
    const orders = {
      entry: { service: 'orders', namespace: 'shop', address: '10.0.0.5:15006', spiffeId: ORDERS },
      workload: 'orders',
      namespace: 'shop',
      labels: { app: 'orders' },
    };
    const discovered = {
      endpoints: [orders],
      replicas: new Map([['shop/orders', 2]]),
      hosts: new Map([[ORDERS, ['10.0.0.5', '10.0.0.6']]]),
    };
    hub.setDiscovered(discovered);
    await new Promise((resolve) => setTimeout(resolve, 5));
    t.same(
      frontend.sent.at(-1)?.registry.map((e) => e.address),
      ['192.0.2.10:15006', '10.0.0.5:15006'],
      'shop/orders from discovery once, ops/billing from its registration',
    );
    t.same(
      hub.addressesOf(ORDERS),
      ['10.0.0.5', '10.0.0.6'],
      'every pod of the identity, ready or not',
    );
    t.same(hub.addressesOf(OTHER), ['192.0.2.10']);
    const sentBefore = frontend.sent.length;
    const version = hub.version;
    hub.setDiscovered({ ...discovered, endpoints: [{ ...orders }] });
    await new Promise((resolve) => setTimeout(resolve, 5));
    t.equal(hub.version, version, 'the same discovery again changes nothing');
    t.equal(frontend.sent.length, sentBefore);
  },
);
