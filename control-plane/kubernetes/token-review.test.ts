/**
 * TokenReview against a fake API server over HTTPS (test/fake-cluster.ts:
 * no API server runs here); the reviews it answers are hand-written in the
 * API's form (test/fixtures/cluster.ts), not recorded from a cluster.
 */
import t from 'tap';
import { UnavailableError } from '../../common/errors.ts';
import { startFakeCluster } from '../../test/fake-cluster.ts';
import { pod, projectedToken, reviewOf } from '../../test/fixtures/cluster.ts';
import { TokenReviewer } from './token-review.ts';

const orders = pod({
  name: 'orders-1',
  namespace: 'shop',
  serviceAccount: 'orders',
  labels: { app: 'orders' },
  ip: '10.0.0.5',
  inboundPort: 15006,
});
const reviews = (cluster: Awaited<ReturnType<typeof startFakeCluster>>) =>
  cluster.requests.filter((r) => r.path === '/apis/authentication.k8s.io/v1/tokenreviews');

t.test(
  'a token the API server authenticates for audience postern proves its namespace, service account and pod',
  async (t) => {
    const cluster = await startFakeCluster(t, [orders]);
    const token = projectedToken(orders);
    cluster.reviews.set(token, reviewOf(orders));
    const reviewer = new TokenReviewer(cluster.kubeConfig);
    t.match(await reviewer.review(token), {
      namespace: 'shop',
      serviceAccount: 'orders',
      podName: 'orders-1',
      podUid: 'orders-1-uid',
    });
    t.match(reviews(cluster)[0]!.body, {
      apiVersion: 'authentication.k8s.io/v1',
      kind: 'TokenReview',
      spec: { token, audiences: ['postern'] },
    });
    await reviewer.review(token);
    t.equal(reviews(cluster).length, 1, 'a token reviewed once is remembered until it expires');
  },
);

t.test(
  'refused: what the API server does not authenticate, or not for us, or not bound to a pod',
  async (t) => {
    const cluster = await startFakeCluster(t, [orders]);
    const reviewer = new TokenReviewer(cluster.kubeConfig);
    t.equal(await reviewer.review(projectedToken(orders)), undefined, 'not authenticated');

    const forApiServer = projectedToken(orders);
    cluster.reviews.set(forApiServer, {
      ...reviewOf(orders),
      audiences: ['https://kubernetes.default.svc'],
    });
    t.equal(await reviewer.review(forApiServer), undefined, 'a token for another audience');

    const userToken = projectedToken(orders);
    cluster.reviews.set(userToken, {
      ...reviewOf(orders),
      user: { username: 'alice@example.com' },
    });
    t.equal(await reviewer.review(userToken), undefined, 'a user, not a service account');

    const unbound = projectedToken(orders);
    const status = reviewOf(orders);
    cluster.reviews.set(unbound, { ...status, user: { ...status.user!, extra: {} } });
    t.equal(await reviewer.review(unbound), undefined, 'a legacy token bound to no pod');
  },
);

t.test('junk is turned away without asking the API server', async (t) => {
  const cluster = await startFakeCluster(t, [orders]);
  const reviewer = new TokenReviewer(cluster.kubeConfig);
  for (const junk of [
    'pst_not-a-jwt',
    'a.b.c',
    projectedToken(orders, { audience: 'https://kubernetes.default.svc' }),
    projectedToken(orders, { expiresInSeconds: -10 }),
  ]) {
    t.notOk(reviewer.accepts(junk), junk.slice(0, 30));
    t.equal(await reviewer.review(junk), undefined);
  }
  t.equal(reviews(cluster).length, 0);
});

t.test(
  'an API server that cannot answer is UnavailableError (retry), never a refusal',
  async (t) => {
    const cluster = await startFakeCluster(t, [orders]);
    const token = projectedToken(orders);
    cluster.reviews.set(token, reviewOf(orders));
    const reviewer = new TokenReviewer(cluster.kubeConfig);
    cluster.setDown(true);
    await t.rejects(reviewer.review(token), UnavailableError);
    cluster.setDown(false);
    t.match(await reviewer.review(token), { serviceAccount: 'orders' });
  },
);
