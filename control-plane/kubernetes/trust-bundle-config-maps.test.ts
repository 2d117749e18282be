/** Against a fake API server over HTTPS (test/fake-kubernetes-api.ts): no API server runs here. */
import t from 'tap';
import { sendJson, startFakeKubernetesApi } from '../../test/fake-kubernetes-api.ts';
import { testLogger } from '../../test/helpers.ts';
import { TrustBundleConfigMaps } from './trust-bundle-config-maps.ts';

const BUNDLE = '-----BEGIN CERTIFICATE-----\nroot-1\n-----END CERTIFICATE-----\n';

t.test(
  'the trust bundle ConfigMap is created in each namespace, updated where it differs, left where it matches',
  async (t) => {
    // shop has none yet, billing has an old bundle, ops has the current one.
    const stored = new Map<string, Record<string, unknown>>([
      [
        'billing',
        { metadata: { name: 'postern-ca-root', namespace: 'billing' }, data: { 'ca.crt': 'old' } },
      ],
      [
        'ops',
        { metadata: { name: 'postern-ca-root', namespace: 'ops' }, data: { 'ca.crt': BUNDLE } },
      ],
    ]);
    const api = await startFakeKubernetesApi(t, (req, res) => {
      const namespace = req.path.split('/')[4]!;
      if (req.method === 'POST') {
        stored.set(namespace, req.body as Record<string, unknown>);
        return sendJson(res, 201, req.body);
      }
      const current = stored.get(namespace);
      if (!current) return sendJson(res, 404, { kind: 'Status', code: 404, reason: 'NotFound' });
      if (req.method === 'PATCH') {
        const next = { ...current, data: (req.body as { data: unknown }).data };
        stored.set(namespace, next);
        return sendJson(res, 200, next);
      }
      sendJson(res, 200, current);
    });
    let namespaces = ['shop', 'billing', 'ops'];
    const maps = new TrustBundleConfigMaps(api.kubeConfig, testLogger('control-plane'), {
      name: 'postern-ca-root',
      namespaces: () => namespaces,
    });
    t.teardown(() => maps.close());
    await maps.set(BUNDLE);
    const writes = () =>
      api.requests
        .filter((r) => r.method !== 'GET')
        .map((r) => `${r.method} ${r.path} ${r.contentType}`);
    t.same(writes(), [
      'POST /api/v1/namespaces/shop/configmaps application/json',
      'PATCH /api/v1/namespaces/billing/configmaps/postern-ca-root application/merge-patch+json',
    ]);
    for (const ns of namespaces)
      t.equal((stored.get(ns)!.data as Record<string, string>)['ca.crt'], BUNDLE, ns);
    t.match(stored.get('shop'), {
      metadata: { labels: { 'app.kubernetes.io/part-of': 'postern' } },
    });

    namespaces = [...namespaces, 'new'];
    await maps.sync();
    t.equal(writes().length, 3, 'a new namespace gets one; the rest are left alone');
  },
);
