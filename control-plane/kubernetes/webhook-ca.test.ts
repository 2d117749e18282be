/** Against a fake API server over HTTPS (test/fake-kubernetes-api.ts): no API server runs here. */
import { execFileSync } from 'node:child_process';
import { join } from 'node:path';
import fastJsonPatch, { type Operation } from 'fast-json-patch';
import t from 'tap';
import { parseAllDocuments } from 'yaml';
import { sendJson, startFakeKubernetesApi } from '../../test/fake-kubernetes-api.ts';
import { testLogger } from '../../test/helpers.ts';
import { WebhookCaBundle } from './webhook-ca.ts';

const MANIFESTS = join(import.meta.dirname, '../../manifests');
const BUNDLE = '-----BEGIN CERTIFICATE-----\nMIIB...\n-----END CERTIFICATE-----\n';

t.test(
  "the control plane keeps its webhooks' caBundle the mesh trust bundle, patching only what differs",
  async (t) => {
    // What `kubectl apply -k manifests/` created: the configurations as the manifests have them.
    const objects = new Map(
      parseAllDocuments(execFileSync('kubectl', ['kustomize', MANIFESTS], { encoding: 'utf8' }))
        .map((d) => d.toJS())
        .filter((o) => o.kind.endsWith('WebhookConfiguration'))
        .map((o) => [o.metadata.name, o]),
    );
    const api = await startFakeKubernetesApi(t, (req, res) => {
      const name = req.path.split('/').at(-1)!;
      const object = objects.get(name);
      if (!object) return sendJson(res, 404, { kind: 'Status', code: 404, reason: 'NotFound' });
      if (req.method === 'PATCH') {
        const patched = fastJsonPatch.applyPatch(object, req.body as Operation[], true).newDocument;
        objects.set(name, patched);
        return sendJson(res, 200, patched);
      }
      sendJson(res, 200, object);
    });
    const keeper = new WebhookCaBundle(api.kubeConfig, testLogger('control-plane'));
    t.teardown(() => keeper.close());
    await keeper.set(BUNDLE);
    const patches = api.requests.filter((r) => r.method === 'PATCH');
    t.same(
      patches.map((p) => [p.path, p.contentType]),
      [
        [
          '/apis/admissionregistration.k8s.io/v1/mutatingwebhookconfigurations/postern-sidecar-injector',
          'application/json-patch+json',
        ],
        [
          '/apis/admissionregistration.k8s.io/v1/validatingwebhookconfigurations/postern-policy-validator',
          'application/json-patch+json',
        ],
      ],
    );
    for (const object of objects.values()) {
      t.equal(
        Buffer.from(object.webhooks[0].clientConfig.caBundle, 'base64').toString(),
        BUNDLE,
        `${object.metadata.name}: the mesh bundle`,
      );
    }
    await keeper.sync();
    t.equal(api.requests.filter((r) => r.method === 'PATCH').length, 2, 'unchanged: no patch');
    await keeper.set(`${BUNDLE}${BUNDLE}`);
    t.equal(
      api.requests.filter((r) => r.method === 'PATCH').length,
      4,
      'a rotation step: patched again',
    );
  },
);

t.test('a missing configuration is logged, not fatal', async (t) => {
  const api = await startFakeKubernetesApi(t, (_req, res) =>
    sendJson(res, 404, { kind: 'Status', code: 404, reason: 'NotFound' }),
  );
  const keeper = new WebhookCaBundle(api.kubeConfig, testLogger('control-plane'));
  t.teardown(() => keeper.close());
  await keeper.set(BUNDLE);
  t.equal(api.requests.length, 2, 'asked for both, patched neither');
});
