/** Against a fake API server over HTTPS (test/fake-cluster.ts): no API server runs here. */
import t from 'tap';
import { startFakeCluster } from '../../test/fake-cluster.ts';
import { namespace } from '../../test/fixtures/cluster.ts';
import { testLogger } from '../../test/helpers.ts';
import { NamespaceLabels } from './namespace-labels.ts';

t.test(
  'a namespace created and labelled a moment ago is read from the API before its watch event arrives (its first pods are injected)',
  async (t) => {
    const cluster = await startFakeCluster(t, [
      namespace('shop', { 'postern.dev/inject': 'enabled' }),
    ]);
    const namespaces = new NamespaceLabels(cluster.kubeConfig, testLogger('control-plane'));
    t.teardown(() => namespaces.close());
    await namespaces.start();
    t.same(await namespaces.labelsFresh('shop'), { 'postern.dev/inject': 'enabled' });
    const reads = () =>
      cluster.requests.filter((r) => r.path.startsWith('/api/v1/namespaces/')).length;
    t.equal(reads(), 0, 'a namespace the informer knows costs no request');

    cluster.put(namespace('billing', { 'postern.dev/inject': 'enabled' }), 'quietly');
    t.same(namespaces.labelsOf('billing'), {}, 'the informer has not heard of it');
    t.same(await namespaces.labelsFresh('billing'), { 'postern.dev/inject': 'enabled' });
    t.equal(reads(), 1);

    t.same(
      await namespaces.labelsFresh('nowhere'),
      {},
      'a namespace that does not exist has no labels',
    );
    cluster.setDown(true);
    t.same(
      await namespaces.labelsFresh('elsewhere'),
      {},
      'an API that cannot answer: no labels, no crash',
    );
  },
);
