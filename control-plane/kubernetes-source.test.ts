/**
 * No Kubernetes API server runs here, so this test serves the API's wire
 * format from a fake over real HTTPS: a RoutePolicyList as `kubectl get
 * --raw` returns it (test/fixtures/kubernetes) and watch events as the API
 * server streams them (one JSON object per line). The client side is the
 * real @kubernetes/client-node informer.
 */
import { mkdtemp, readFile } from 'node:fs/promises';
import type { ServerResponse } from 'node:http';
import { createServer } from 'node:https';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { KubeConfig } from '@kubernetes/client-node';
import t, { type Test } from 'tap';
import type { RoutePolicy } from '../common/policy/schema.ts';
import { apiServerTls, fakeKubeConfig } from '../test/fake-kubernetes-api.ts';
import { eventually, testLogger } from '../test/helpers.ts';
import { KubernetesPolicySource } from './kubernetes-source.ts';
import type { PolicySet } from './policy-source.ts';

const PATH = '/apis/postern.dev/v1alpha1/routepolicies';
const ROUTES_PATH = '/apis/gateway.networking.k8s.io/v1/httproutes';
const fixture = (name: string) =>
  readFile(join(import.meta.dirname, `../test/fixtures/kubernetes/${name}`), 'utf8');

async function fakeApiServer(t: Test, options: { withoutGatewayApi?: boolean } = {}) {
  const tls = await apiServerTls();
  let list = await fixture('routepolicy-list.json');
  const routeList = await fixture('httproute-list.json');
  const watchers: ServerResponse[] = [];
  const routeWatchers: ServerResponse[] = [];
  const requests: string[] = [];
  /** Status writes: the path, content type and body of each PATCH. */
  const patches: { path: string; contentType: string; body: unknown }[] = [];
  let failLists = 0;
  const server = createServer({ cert: tls.cert, key: tls.key }, (req, res) => {
    requests.push(`${req.method} ${req.url} ${req.headers.authorization}`);
    const url = new URL(req.url ?? '/', 'https://api');
    if (
      req.method === 'PATCH' &&
      url.pathname.startsWith('/apis/gateway.networking.k8s.io/v1/namespaces/')
    ) {
      let body = '';
      req.on('data', (chunk) => {
        body += chunk;
      });
      req.on('end', () => {
        patches.push({
          path: url.pathname,
          contentType: String(req.headers['content-type']),
          body: JSON.parse(body),
        });
        res.writeHead(200, { 'content-type': 'application/json' });
        res.end(body);
      });
      return;
    }
    if (url.pathname === ROUTES_PATH && options.withoutGatewayApi) {
      res.writeHead(404, { 'content-type': 'application/json' });
      res.end(
        JSON.stringify({
          kind: 'Status',
          apiVersion: 'v1',
          status: 'Failure',
          reason: 'NotFound',
          code: 404,
        }),
      );
      return;
    }
    if (url.pathname === ROUTES_PATH) {
      res.writeHead(200, { 'content-type': 'application/json', 'transfer-encoding': 'chunked' });
      if (url.searchParams.get('watch') === 'true') {
        res.flushHeaders();
        routeWatchers.push(res);
        return;
      }
      res.end(routeList);
      return;
    }
    if (url.pathname !== PATH) {
      res.writeHead(404).end();
      return;
    }
    if (url.searchParams.get('watch') === 'true') {
      res.writeHead(200, { 'content-type': 'application/json', 'transfer-encoding': 'chunked' });
      res.flushHeaders();
      watchers.push(res);
      return;
    }
    if (failLists > 0) {
      failLists--;
      res.writeHead(500, { 'content-type': 'application/json' });
      res.end(
        JSON.stringify({
          kind: 'Status',
          apiVersion: 'v1',
          status: 'Failure',
          message: 'etcdserver: request timed out',
          code: 500,
        }),
      );
      return;
    }
    res.writeHead(200, { 'content-type': 'application/json' });
    res.end(list);
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  t.teardown(() => {
    server.closeAllConnections();
    return new Promise((resolve) => server.close(resolve));
  });
  const kubeConfig = fakeKubeConfig((server.address() as AddressInfo).port, tls.caPem);
  const event = (type: 'ADDED' | 'MODIFIED' | 'DELETED', object: unknown) => {
    for (const watcher of watchers) watcher.write(`${JSON.stringify({ type, object })}\n`);
  };
  return {
    kubeConfig,
    event,
    routeEvent(type: 'ADDED' | 'MODIFIED' | 'DELETED', object: unknown) {
      for (const watcher of routeWatchers) watcher.write(`${JSON.stringify({ type, object })}\n`);
    },
    patches,
    requests,
    watching: () => watchers.length > 0,
    /** Changes what the next list returns (as if resources changed while nobody watched). */
    editList(edit: (list: { items: { metadata: { name: string }; spec: unknown }[] }) => void) {
      const parsed = JSON.parse(list);
      edit(parsed);
      list = JSON.stringify(parsed);
    },
    failNextLists(count: number) {
      failLists = count;
    },
    /** Cuts every open watch stream, as an API-server restart or a load balancer would. */
    breakWatches() {
      for (const watcher of watchers.splice(0)) watcher.socket?.destroy();
      for (const watcher of routeWatchers.splice(0)) watcher.socket?.destroy();
    },
  };
}

/** A source whose every published policy set is kept in `changes`, closed at teardown. */
function recordingSource(t: Test, kubeConfig: KubeConfig) {
  const changes: (readonly RoutePolicy[])[] = [];
  const source = new KubernetesPolicySource(kubeConfig, testLogger('control-plane'), (set) =>
    changes.push(set.policies),
  );
  t.teardown(() => source.close());
  return { source, changes };
}

const routePolicy = (name: string, resourceVersion: string, principals: string[]) => ({
  apiVersion: 'postern.dev/v1alpha1',
  kind: 'RoutePolicy',
  metadata: { name, namespace: 'shop', resourceVersion, uid: `uid-${name}` },
  spec: {
    selector: { matchLabels: { app: 'orders' } },
    routes: [{ name: 'r', allow: [{ principals }] }],
  },
});

t.test(
  'RoutePolicies from the Kubernetes API: listed, watched, validated one by one',
  async (t) => {
    const api = await fakeApiServer(t);
    const { source, changes } = recordingSource(t, api.kubeConfig);

    const { policies: initial } = await source.start();
    t.same(
      initial.map((p) => p.metadata),
      [{ name: 'orders-api', namespace: 'shop' }],
      'the invalid resource in the list is left out; server metadata is stripped',
    );
    t.match(
      api.requests[0],
      new RegExp(`^GET ${PATH}.* Bearer service-account-token$`),
      'authenticates with the configured token',
    );
    await eventually(api.watching);

    api.event('ADDED', routePolicy('extra', '48300', ['spiffe://cluster.local/ns/shop/sa/a']));
    await eventually(() => changes.at(-1)?.length === 2);
    t.same(
      changes.at(-1)!.map((p) => p.metadata.name),
      ['extra', 'orders-api'],
    );

    api.event('MODIFIED', routePolicy('extra', '48301', ['not-a-principal']));
    api.event('ADDED', routePolicy('zz-later', '48302', ['spiffe://cluster.local/ns/shop/sa/b']));
    await eventually(() => changes.at(-1)?.some((p) => p.metadata.name === 'zz-later') ?? false);
    const extra = changes.at(-1)!.find((p) => p.metadata.name === 'extra')!;
    t.same(
      extra.spec.routes[0]!.allow![0]!.principals,
      ['spiffe://cluster.local/ns/shop/sa/a'],
      'an invalid update keeps the last valid version',
    );

    api.event('DELETED', routePolicy('extra', '48303', ['spiffe://cluster.local/ns/shop/sa/a']));
    await eventually(() => !changes.at(-1)!.some((p) => p.metadata.name === 'extra'));
    t.same(
      changes.at(-1)!.map((p) => p.metadata.name),
      ['orders-api', 'zz-later'],
    );

    const auditing = {
      ...routePolicy('auditing', '48304', ['*']),
      spec: { ...routePolicy('auditing', '48304', ['*']).spec, mode: 'audit' },
    };
    const before = changes.length;
    api.event('ADDED', auditing);
    await eventually(() => changes.length > before);
    t.same(
      changes.at(-1)!.map((p) => p.metadata.name),
      ['orders-api', 'zz-later'],
      'a conflicting namespace keeps its last good set',
    );
    api.event('ADDED', {
      ...routePolicy('elsewhere', '48305', ['*']),
      metadata: {
        name: 'elsewhere',
        namespace: 'billing',
        resourceVersion: '48305',
        uid: 'uid-elsewhere',
      },
    });
    await eventually(() => changes.at(-1)!.some((p) => p.metadata.name === 'elsewhere'));
    t.pass('other namespaces still get their changes');
  },
);

t.test(
  'a failing list is retried instead of serving an empty policy set, and a broken watch is restarted',
  async (t) => {
    const api = await fakeApiServer(t);
    api.failNextLists(2);
    const { source, changes } = recordingSource(t, api.kubeConfig);
    const { policies: initial } = await source.start();
    t.same(
      initial.map((p) => p.metadata.name),
      ['orders-api'],
      'start() waited for a list that succeeded',
    );
    t.equal(
      api.requests.filter((r) => r.startsWith(`GET ${PATH}`) && !r.includes('watch=true')).length,
      3,
      'two failed lists, then one that worked',
    );

    await eventually(api.watching);
    api.breakWatches();
    await eventually(api.watching, 15_000);
    api.event(
      'ADDED',
      routePolicy('after-break', '48400', ['spiffe://cluster.local/ns/shop/sa/a']),
    );
    await eventually(
      () => changes.at(-1)?.some((p) => p.metadata.name === 'after-break') ?? false,
      10_000,
    );
    t.pass('events on the new watch are applied');
  },
);

t.test(
  'a resource that turned invalid while the control plane was down keeps its last valid version',
  async (t) => {
    const api = await fakeApiServer(t);
    const stateFile = join(
      await mkdtemp(join(tmpdir(), 'postern-k8s-')),
      'kubernetes-last-valid.json',
    );
    const first = new KubernetesPolicySource(
      api.kubeConfig,
      testLogger('control-plane'),
      () => {},
      { lastValidFile: stateFile },
    );
    t.same(
      (await first.start()).policies.map((p) => p.metadata.name),
      ['orders-api'],
    );
    await first.close();

    // While no control plane runs, orders-api is edited into something invalid.
    api.editList((list) => {
      list.items[0]!.spec = { routes: [{ name: 'Bad Name', allow: [{ principals: ['nobody'] }] }] };
    });
    const second = new KubernetesPolicySource(
      api.kubeConfig,
      testLogger('control-plane'),
      () => {},
      { lastValidFile: stateFile },
    );
    t.teardown(() => second.close());
    const { policies } = await second.start();
    t.same(
      policies.map((p) => p.metadata.name),
      ['orders-api'],
      'not dropped',
    );
    t.same(
      policies[0]!.spec.routes[0]!.name,
      'list-orders',
      'the version enforced before the restart',
    );
  },
);

t.test(
  'HTTPRoutes from the Kubernetes API join the policy set, and get Accepted and ResolvedRefs in status.parents for the gateways served here',
  async (t) => {
    const api = await fakeApiServer(t);
    const sets: PolicySet[] = [];
    const source = new KubernetesPolicySource(
      api.kubeConfig,
      testLogger('control-plane'),
      (set) => sets.push(set),
      {
        serves: ({ name, namespace }) => name === 'edge' && namespace === 'shop',
        statusIntervalMs: 200,
      },
    );
    t.teardown(() => source.close());
    const { httpRoutes } = await source.start();
    t.same(
      httpRoutes.map((r) => r.metadata),
      [{ name: 'shop-api', namespace: 'shop', creationTimestamp: '2026-11-25T14:02:11Z' }],
      'the invalid route is left out; server metadata (and kubectl annotations) stripped',
    );
    t.notOk('status' in httpRoutes[0]!, 'status does not travel to gateways');

    await eventually(() => new Set(api.patches.map((p) => p.path)).size === 2);
    const patchOf = (name: string) =>
      api.patches.find((p) => p.path.endsWith(`/namespaces/shop/httproutes/${name}/status`))!;
    const shop = patchOf('shop-api');
    t.equal(shop.contentType, 'application/merge-patch+json');
    t.match(shop.body, {
      metadata: { resourceVersion: '51802' },
      status: {
        parents: [
          {
            controllerName: 'istio.io/gateway-controller',
            conditions: [{ message: 'Route was valid' }],
          },
          {
            controllerName: 'postern.dev/gateway-controller',
            parentRef: { group: 'gateway.networking.k8s.io', kind: 'Gateway', name: 'edge' },
            conditions: [
              { type: 'Accepted', status: 'True', reason: 'Accepted', observedGeneration: 2 },
              {
                type: 'ResolvedRefs',
                status: 'True',
                reason: 'ResolvedRefs',
                observedGeneration: 2,
              },
            ],
          },
        ],
      },
    });
    t.equal(
      (shop.body as { status: { parents: unknown[] } }).status.parents.length,
      2,
      "istio-ingress is another controller's parent: no entry of ours for it, and its own kept",
    );
    t.match(patchOf('broken').body, {
      status: {
        parents: [
          {
            controllerName: 'postern.dev/gateway-controller',
            conditions: [
              {
                type: 'Accepted',
                status: 'False',
                reason: 'UnsupportedValue',
                message: /spec\.rules\[0\]\.matches\[0\]\.path\.type/,
              },
              { type: 'ResolvedRefs', status: 'True' },
            ],
          },
        ],
      },
    });

    // The API server echoes the status back through the watch: written once, not again each round.
    const written = JSON.parse(await fixture('httproute-list.json')).items[0];
    written.metadata.resourceVersion = '51900';
    // As the API server returns a custom resource: its keys in its own (sorted) order, not ours.
    written.status = sortedKeys((shop.body as { status: unknown }).status);
    api.routeEvent('MODIFIED', written);
    await new Promise((resolve) => setTimeout(resolve, 200));
    const before = api.patches.filter((p) => p.path.includes('/shop-api/')).length;
    await new Promise((resolve) => setTimeout(resolve, 700));
    t.equal(
      api.patches.filter((p) => p.path.includes('/shop-api/')).length,
      before,
      'an unchanged status is not written again',
    );

    // An edit that breaks the route: the gateway keeps its last valid version, the status says why.
    const broken = structuredClone(written);
    broken.metadata.resourceVersion = '51901';
    broken.metadata.generation = 3;
    broken.spec.rules[0].backendRefs[0].weight = -1;
    api.routeEvent('MODIFIED', broken);
    await eventually(() =>
      api.patches.some(
        (p) =>
          p.path.includes('/shop-api/') &&
          JSON.stringify(p.body).includes('"observedGeneration":3') &&
          JSON.stringify(p.body).includes('UnsupportedValue'),
      ),
    );
    t.same(
      sets.at(-1)!.httpRoutes[0]!.spec.rules![0]!.backendRefs![0]!.weight,
      1,
      'the last valid version stays in force',
    );
  },
);

function sortedKeys(value: unknown): unknown {
  if (Array.isArray(value)) return value.map(sortedKeys);
  if (!value || typeof value !== 'object') return value;
  return Object.fromEntries(
    Object.keys(value)
      .sort()
      .map((key) => [key, sortedKeys((value as Record<string, unknown>)[key])]),
  );
}

t.test(
  "regression: without the Gateway API's CRDs the control plane never started (the HTTPRoute list 404s)",
  async (t) => {
    const api = await fakeApiServer(t, { withoutGatewayApi: true });
    const { source } = recordingSource(t, api.kubeConfig);
    const started = await source.start();
    t.same(
      started.policies.map((p) => p.metadata.name),
      ['orders-api'],
      'RoutePolicies alone',
    );
    t.same(started.httpRoutes, []);
  },
);
