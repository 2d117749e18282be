/** Discovery as a pure function of the cluster's objects (hand-written fixtures in the API's form, test/fixtures/cluster.ts). */
import t from 'tap';
import { endpointSlice, pod, service } from '../../test/fixtures/cluster.ts';
import { discoveredEndpoints } from './discovery.ts';
import { meshPod } from './pod-index.ts';

const orders1 = pod({
  name: 'orders-7d9f-a',
  namespace: 'shop',
  serviceAccount: 'orders',
  labels: { app: 'orders', 'pod-template-hash': '7d9f' },
  ip: '10.0.1.5',
  inboundPort: 15006,
});
const orders2 = pod({ ...podSpec(orders1), name: 'orders-7d9f-b', ip: '10.0.2.7' });
const plain = pod({
  name: 'legacy-1',
  namespace: 'shop',
  serviceAccount: 'legacy',
  labels: { app: 'legacy' },
  ip: '10.0.1.9',
});

function podSpec(object: ReturnType<typeof pod>) {
  return {
    name: object.metadata.name,
    namespace: object.metadata.namespace!,
    serviceAccount: 'orders',
    labels: object.metadata.labels!,
    ip: '10.0.0.1',
    inboundPort: 15006,
  };
}

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
      ...podSpec(orders1),
      name: 'orders-done',
      ip: '10.0.3.1',
      phase: 'Succeeded',
    });
    const recreated = pod({
      ...podSpec(orders1),
      name: 'orders-re',
      ip: '10.0.3.2',
      uid: 'new-uid',
    });
    const staleSlice = endpointSlice('orders', 'shop', [
      { pod: pod({ ...podSpec(orders1), name: 'orders-re', ip: '10.0.3.2', uid: 'old-uid' }) },
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
    const v6 = pod({ ...podSpec(orders1), name: 'orders-v6', ip: 'fd00::5' });
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
  const custom = pod({ ...podSpec(orders1), inboundPort: 25006 });
  t.equal(meshPod(custom, 'cluster.local')!.inboundPort, 25006);
  t.equal(meshPod(plain, 'cluster.local')!.inboundPort, undefined, 'no sidecar, no inbound port');
  const hostNetwork = { ...orders1, spec: { ...(orders1.spec as object), hostNetwork: true } };
  t.equal(
    meshPod(hostNetwork, 'cluster.local')!.ip,
    undefined,
    "a hostNetwork pod's IP is its node's",
  );
});
