/**
 * Cluster credentials with the real TokenReviewer and PodIndex against a
 * fake API server over HTTPS (test/fake-cluster.ts: no API server runs
 * here; its objects and reviews are hand-written in the API's form).
 */
import t, { type Test } from 'tap';
import { startFakeCluster } from '../../test/fake-cluster.ts';
import { pod, projectedToken, reviewOf, specOf } from '../../test/fixtures/cluster.ts';
import { eventually, tempDir, testLogger } from '../../test/helpers.ts';
import { TokenStore } from '../tokens.ts';
import { ClusterCredentials } from './cluster-credentials.ts';
import { PodIndex } from './pod-index.ts';
import { TokenReviewer } from './token-review.ts';

const ORDERS = 'spiffe://cluster.local/ns/shop/sa/orders';
const orders = pod({
  name: 'orders-1',
  namespace: 'shop',
  serviceAccount: 'orders',
  labels: { app: 'orders', tier: 'api' },
  ip: '10.0.0.5',
  inboundPort: 15006,
});

async function setUp(t: Test) {
  const cluster = await startFakeCluster(t, [orders]);
  const pods = new PodIndex(cluster.kubeConfig, 'cluster.local', testLogger('control-plane'));
  t.teardown(() => pods.close());
  await pods.start();
  const tokens = new TokenStore(`${await tempDir(t)}/tokens.json`, 'cluster.local');
  const credentials = new ClusterCredentials(
    tokens,
    new TokenReviewer(cluster.kubeConfig),
    pods,
    testLogger('control-plane'),
  );
  const tokenOf = (object: typeof orders) => {
    const token = projectedToken(object);
    cluster.reviews.set(token, reviewOf(object));
    return token;
  };
  return { cluster, pods, credentials, tokens, tokenOf };
}

t.test(
  "a pod's token bootstraps from the pod's IP only, as the pod's identity, workload and labels",
  async (t) => {
    const { credentials, tokenOf } = await setUp(t);
    const token = tokenOf(orders);
    t.equal(
      await credentials.bootstrap(token, '10.0.0.9'),
      undefined,
      'a copied token used elsewhere',
    );
    t.same(await credentials.bootstrap(token, '10.0.0.5'), {
      workload: 'orders',
      namespace: 'shop',
      serviceAccount: 'orders',
      spiffeId: ORDERS,
      labels: { app: 'orders', tier: 'api' },
      via: 'pod',
    });
    t.equal(
      await credentials.bootstrap(`${token}x`, '10.0.0.5'),
      undefined,
      'a token the API refuses',
    );
  },
);

t.test(
  'the informer a step behind: a pod created a moment ago is read from the API; a deleted or recreated pod refuses the old token',
  async (t) => {
    const { cluster, credentials, tokenOf } = await setUp(t);
    const fresh = pod({ ...specOf(orders), name: 'orders-2', ip: '10.0.0.6' });
    cluster.put(fresh, 'quietly');
    const started = Date.now();
    t.match(await credentials.bootstrap(tokenOf(fresh), '10.0.0.6'), { spiffeId: ORDERS });
    t.ok(Date.now() - started < 2_000, 'without waiting for the watch');

    // Reviewed (and remembered) while the pod lived; then the pod is deleted.
    const token = tokenOf(orders);
    t.ok(await credentials.bootstrap(token, '10.0.0.5'));
    cluster.remove('Pod', 'shop', 'orders-1');
    await eventually(async () => (await credentials.bootstrap(token, '10.0.0.5')) === undefined);
    t.pass('refused once the deletion is heard of, the remembered review notwithstanding');
    // A pod recreated under the name (a StatefulSet's) is another pod: the old token is refused.
    cluster.put({ ...orders, metadata: { ...orders.metadata, uid: 'orders-1-again' } });
    await eventually(() => credentials.stillBound('orders', ORDERS));
    t.equal(await credentials.bootstrap(token, '10.0.0.5'), undefined);
  },
);

t.test(
  "renewals and watches only from a live pod's IP; a watch waits a moment for the pod's IP to reach the informer",
  async (t) => {
    const { cluster, credentials } = await setUp(t);
    t.ok(await credentials.mayRenew(ORDERS, '10.0.0.5'));
    t.notOk(await credentials.mayRenew(ORDERS, '10.0.0.9'), 'the SVID used from elsewhere');
    t.match(await credentials.bindingFor('orders', ORDERS, '10.0.0.5'), { via: 'pod' });
    t.equal(
      await credentials.bindingFor('billing', ORDERS, '10.0.0.5'),
      undefined,
      'another workload',
    );

    // A second pod whose IP the informer has not heard of yet.
    const pending = pod({ ...specOf(orders), name: 'orders-3', ip: '' });
    cluster.put(pending);
    const watch = credentials.bindingFor('orders', ORDERS, '10.0.0.7');
    setTimeout(
      () => cluster.put(pod({ ...specOf(orders), name: 'orders-3', ip: '10.0.0.7' })),
      200,
    );
    t.match(await watch, { via: 'pod' }, 'answered once the pod has its IP');

    cluster.put({ ...orders, status: { phase: 'Succeeded', podIP: '10.0.0.5' } });
    await eventually(async () => !(await credentials.mayRenew(ORDERS, '10.0.0.5')));
    t.pass('a finished pod renews nothing');
    t.ok(credentials.stillBound('orders', ORDERS), 'orders-3 still runs as orders');
  },
);

t.test(
  'operator-minted bootstrap tokens work beside pods (a VM, a gateway outside the cluster)',
  async (t) => {
    const { credentials, tokens } = await setUp(t);
    const token = await tokens.create('billing', 'shop', 'billing');
    t.match(await credentials.bootstrap(token, '192.0.2.10'), {
      workload: 'billing',
      via: 'bootstrap-token',
    });
    t.ok(await credentials.mayRenew('spiffe://cluster.local/ns/shop/sa/billing', '192.0.2.10'));
    t.ok(credentials.stillBound('billing', 'spiffe://cluster.local/ns/shop/sa/billing'));
  },
);
