/** Discovery as a pure function of the cluster's objects (hand-written fixtures in the API's form, test/fixtures/cluster.ts). */
import t from 'tap';
import { endpointSlice, pod, service, specOf } from '../../test/fixtures/cluster.ts';
import { discoveredEndpoints, podFacts } from './discovery.ts';
import { meshPod } from './pod-index.ts';

const orders1 = pod({
  name: 'orders-7d9f-a',
  namespace: 'shop',
  serviceAccount: 'orders',
  labels: { app: 'orders', 'pod-template-hash': '7d9f' },
  ip: '10.0.1.5',
  inboundPort: 15006,
});
const orders2 = pod({ ...specOf(orders1), name: 'orders-7d9f-b', ip: '10.0.2.7' });
const plain = pod({
  name: 'legacy-1',
  namespace: 'shop',
  serviceAccount: 'legacy',
  labels: { app: 'legacy' },
  ip: '10.0.1.9',
});

const podsOf = (...pods: ReturnType<typeof pod>[]) => {
  const byName = new Map(
    pods.map((p) => [`${p.metadata.namespace}/${p.metadata.name}`, meshPod(p, 'cluster.local')]),
  );
  return (namespace: string, name: string) => byName.get(`${namespace}/${name}`);
};

t.test(
  "a Service's ready endpoints with a sidecar become registry entries at the pod IP and inbound port, as the pod's service account",
  async (t) => {
    const found = discoveredEndpoints(
      [service('orders', 'shop')],
      [endpointSlice('orders', 'shop', [{ pod: orders2 }, { pod: orders1 }])],
      podsOf(orders1, orders2),
    );
    t.same(
      found.map((e) => e.entry),
      [
        {
          service: 'orders',
          namespace: 'shop',
          address: '10.0.1.5:15006',
          spiffeId: 'spiffe://cluster.local/ns/shop/sa/orders',
        },
        {
          service: 'orders',
          namespace: 'shop',
          address: '10.0.2.7:15006',
          spiffeId: 'spiffe://cluster.local/ns/shop/sa/orders',
        },
      ],
    );
    t.same(found[0]!.labels, { app: 'orders', 'pod-template-hash': '7d9f' });
    t.equal(found[0]!.workload, 'orders');
  },
);

t.test(
  'left out: endpoints not ready, pods without a sidecar, finished pods, a slice whose Service is gone, an ExternalName Service, a pod recreated under the name',
  async (t) => {
    const finished = pod({
      ...specOf(orders1),
      name: 'orders-done',
      ip: '10.0.3.1',
      phase: 'Succeeded',
    });
    const recreated = pod({
      ...specOf(orders1),
      name: 'orders-re',
      ip: '10.0.3.2',
      uid: 'new-uid',
    });
    const staleSlice = endpointSlice('orders', 'shop', [
      { pod: pod({ ...specOf(orders1), name: 'orders-re', ip: '10.0.3.2', uid: 'old-uid' }) },
    ]);
    const external = {
      ...service('partner', 'shop'),
      spec: { type: 'ExternalName', externalName: 'api.example.com' },
    };
    const found = discoveredEndpoints(
      [service('orders', 'shop'), service('legacy', 'shop'), external],
      [
        endpointSlice('orders', 'shop', [
          { pod: orders1 },
          { pod: orders2, ready: false },
          { pod: finished },
        ]),
        { ...staleSlice, metadata: { ...staleSlice.metadata, name: 'orders-stale' } },
        endpointSlice('legacy', 'shop', [{ pod: plain }]),
        endpointSlice('gone', 'shop', [{ pod: orders2 }]),
        endpointSlice('partner', 'shop', [{ pod: orders2 }]),
      ],
      podsOf(orders1, orders2, plain, finished, recreated),
    );
    t.same(
      found.map((e) => `${e.entry.service} ${e.entry.address}`),
      ['orders 10.0.1.5:15006'],
    );
  },
);

t.test(
  'one pod behind two Services is an entry of each; IPv6 addresses are bracketed; the same objects in any order give the same registry',
  async (t) => {
    const v6 = pod({ ...specOf(orders1), name: 'orders-v6', ip: 'fd00::5' });
    const services = [service('orders', 'shop'), service('orders-canary', 'shop')];
    const slices = [
      endpointSlice('orders', 'shop', [{ pod: orders1 }, { pod: orders2 }]),
      endpointSlice('orders-canary', 'shop', [{ pod: orders1 }]),
      {
        ...endpointSlice('orders', 'shop', [{ pod: v6 }], 'IPv6'),
        metadata: { ...endpointSlice('orders', 'shop', []).metadata, name: 'orders-v6slice' },
      },
    ];
    const pods = podsOf(orders1, orders2, v6);
    const found = discoveredEndpoints(services, slices, pods);
    t.same(
      found.map((e) => `${e.entry.service} ${e.entry.address}`),
      [
        'orders 10.0.1.5:15006',
        'orders 10.0.2.7:15006',
        'orders [fd00::5]:15006',
        'orders-canary 10.0.1.5:15006',
      ],
    );
    t.same(
      discoveredEndpoints([...services].reverse(), [...slices].reverse(), pods),
      found,
      'order of the lists does not matter',
    );
  },
);

t.test("a pod's inbound port is the one its proxy container names postern-inbound", async (t) => {
  const custom = pod({ ...specOf(orders1), inboundPort: 25006 });
  t.equal(meshPod(custom, 'cluster.local')!.inboundPort, 25006);
  t.equal(meshPod(plain, 'cluster.local')!.inboundPort, undefined, 'no sidecar, no inbound port');
  const hostNetwork = { ...orders1, spec: { ...(orders1.spec as object), hostNetwork: true } };
  t.same(meshPod(hostNetwork, 'cluster.local')!.ips, [], "a hostNetwork pod's IP is its node's");
});

t.test(
  'an EndpointSlice only selects: another namespace’s pod, an address that is not the pod’s, a reference without a UID are left out',
  async (t) => {
    const bank = pod({ ...specOf(orders1), name: 'pay-1', namespace: 'bank', ip: '10.0.9.9' });
    const slice = endpointSlice('orders', 'shop', [
      { pod: orders1 },
      { pod: orders2 },
      { pod: bank },
    ]);
    const endpoints = slice.endpoints as {
      addresses: string[];
      targetRef: { uid?: string };
      conditions: { ready?: boolean };
    }[];
    endpoints[0]!.addresses = ['10.6.6.6']; // orders1's identity at someone else's address
    delete endpoints[1]!.targetRef.uid; // orders2 named without its UID
    const found = discoveredEndpoints(
      [service('orders', 'shop')],
      [slice],
      podsOf(orders1, orders2, bank),
    );
    t.same(found, [], 'none of the three');
  },
);

t.test('an endpoint whose ready condition is unset is ready (discovery.k8s.io/v1)', async (t) => {
  const slice = endpointSlice('orders', 'shop', [{ pod: orders1 }]);
  delete (slice.endpoints as { conditions: { ready?: boolean } }[])[0]!.conditions.ready;
  const found = discoveredEndpoints([service('orders', 'shop')], [slice], podsOf(orders1));
  t.equal(found.length, 1);
});

t.test(
  'two live pods claiming one address: the one not being deleted, on every replica whatever the list order',
  async (t) => {
    const leaving = {
      ...orders1,
      metadata: { ...orders1.metadata, uid: 'a-old', deletionTimestamp: '2026-11-26T10:00:00Z' },
    };
    const arriving = {
      ...orders1,
      metadata: {
        ...orders1.metadata,
        name: 'orders-new',
        uid: 'z-new',
        labels: { app: 'orders', v: '2' },
      },
    };
    const second = endpointSlice('orders', 'shop', [{ pod: arriving }]);
    const slices = [
      endpointSlice('orders', 'shop', [{ pod: leaving }]),
      { ...second, metadata: { ...second.metadata, name: 'orders-2' } },
    ];
    const pods = podsOf(leaving, arriving);
    const once = discoveredEndpoints([service('orders', 'shop')], slices, pods);
    const reversed = discoveredEndpoints([service('orders', 'shop')], [...slices].reverse(), pods);
    t.same(once, reversed);
    t.equal(once.length, 1);
    t.same(once[0]!.labels, { app: 'orders', v: '2' });
  },
);

t.test(
  'replicas count live injected pods per workload, hosts every live pod’s IPs per identity',
  async (t) => {
    const dual = pod({ ...specOf(orders1), name: 'orders-dual', ip: '10.0.5.5' });
    (dual.status as { podIPs: { ip: string }[] }).podIPs.push({ ip: 'fd00::55' });
    const pods = [orders1, orders2, dual, plain].map((p) => meshPod(p, 'cluster.local')!);
    const byIdentity = new Map<string, typeof pods>();
    for (const p of pods) byIdentity.set(p.spiffeId, [...(byIdentity.get(p.spiffeId) ?? []), p]);
    const { replicas, hosts } = podFacts(byIdentity);
    t.same(
      [...replicas],
      [['shop/orders', 3]],
      'a dual-stack pod is one replica; a pod without a sidecar none',
    );
    t.same(hosts.get('spiffe://cluster.local/ns/shop/sa/orders'), [
      '10.0.1.5',
      '10.0.2.7',
      '10.0.5.5',
      'fd00::55',
    ]);
    t.same(hosts.get('spiffe://cluster.local/ns/shop/sa/legacy'), ['10.0.1.9']);
  },
);

t.test('a relabelled pod keeps the workload its injection fixed', async (t) => {
  const injected = {
    ...orders1,
    metadata: {
      ...orders1.metadata,
      labels: { debug: 'true' },
      annotations: { 'postern.dev/status': 'injected', 'postern.dev/workload': 'orders' },
    },
  };
  t.equal(meshPod(injected, 'cluster.local')!.workload, 'orders');
  t.equal(meshPod(plain, 'cluster.local')!.workload, 'legacy', 'not injected: from its labels');
});
