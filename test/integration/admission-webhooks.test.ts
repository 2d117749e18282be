/**
 * The admission webhooks over real HTTPS, with AdmissionReview JSON as the
 * API server sends it: each patch applied with a standard JSON Patch
 * library (fast-json-patch) and the result checked against the official
 * Pod schema (kubernetes-models). No API server runs here: the reviews are
 * built from realistic pods (test/fixtures/pods.ts), and where a test needs
 * a namespace's labels a function stands in for the Namespace informer.
 */
import { randomUUID } from 'node:crypto';
import fastJsonPatch, { type Operation } from 'fast-json-patch';
import { Pod } from 'kubernetes-models/v1/Pod';
import t from 'tap';
import { Agent, request } from 'undici';
import { DEFAULT_INJECTION } from '../../common/injection-settings.ts';
import { injectPod, type PodTemplate } from '../../control-plane/webhooks/injection.ts';
import { startWebhookServer } from '../../control-plane/webhooks/webhook-server.ts';
import { PODS } from '../fixtures/pods.ts';
import { clientCredentials, startTestMesh, testLogger } from '../helpers.ts';

const { applyPatch, deepClone } = fastJsonPatch;

function review(object: unknown, kind = 'Pod', namespace = 'shop') {
  return {
    apiVersion: 'admission.k8s.io/v1',
    kind: 'AdmissionReview',
    request: {
      uid: randomUUID(),
      kind: { group: kind === 'Pod' ? '' : 'postern.dev', version: 'v1', kind },
      resource: { group: '', version: 'v1', resource: 'pods' },
      requestKind: { group: '', version: 'v1', kind },
      namespace,
      operation: 'CREATE',
      userInfo: {
        username: 'system:serviceaccount:kube-system:replicaset-controller',
        groups: ['system:serviceaccounts', 'system:authenticated'],
      },
      object,
      oldObject: null,
      dryRun: false,
      options: { kind: 'CreateOptions', apiVersion: 'meta.k8s.io/v1' },
    },
  };
}

interface ReviewResponse {
  uid: string;
  allowed: boolean;
  patchType?: string;
  patch?: string;
  warnings?: string[];
  status?: { code: number; message: string };
}

async function webhooks(t: Parameters<typeof startTestMesh>[0]) {
  const mesh = await startTestMesh(t, '', { controlPlane: { webhookPort: 0 } });
  const agent = new Agent({ connect: { ca: mesh.controlPlane.ca.bundlePem } });
  t.teardown(() => agent.close());
  const post = async (port: number, path: string, body: unknown) => {
    const response = await request(`https://localhost:${port}${path}`, {
      method: 'POST',
      body: typeof body === 'string' ? body : JSON.stringify(body),
      headers: { 'content-type': 'application/json' },
      dispatcher: agent,
    });
    return {
      status: response.statusCode,
      body: (await response.body.json()) as Record<string, unknown>,
    };
  };
  return { mesh, post, port: mesh.controlPlane.webhookPort! };
}

/** Sends `pod` for injection; returns the response and the pod with its patch applied. */
async function injected(
  post: Awaited<ReturnType<typeof webhooks>>['post'],
  port: number,
  pod: unknown,
) {
  const sent = review(pod);
  const { status, body } = await post(port, '/inject', sent);
  const response = body.response as ReviewResponse;
  const ops = response.patch
    ? (JSON.parse(Buffer.from(response.patch, 'base64').toString('utf8')) as Operation[])
    : [];
  // validateOperation: every op well formed and its path resolvable, as the API server checks.
  const result = applyPatch(deepClone(pod), ops, true, false).newDocument as PodTemplate;
  return { status, response, sentUid: sent.request.uid, ops, result };
}

t.test(
  'the mutating webhook: realistic pods over HTTPS, patches that apply and validate, and twice is once',
  async (t) => {
    const { mesh, post } = await webhooks(t);
    // A namespace labelled for injection: this function stands in for the Namespace informer.
    const serving = await clientCredentials(
      mesh.controlPlane.ca,
      'spiffe://cluster.local/ns/postern-system/sa/postern-control-plane',
      { dnsNames: ['localhost'] },
    );
    const labelled = await startWebhookServer({
      port: 0,
      host: '127.0.0.1',
      tls: { cert: serving.cert, key: serving.key },
      deps: {
        settings: DEFAULT_INJECTION,
        namespaceLabels: (ns): Record<string, string> =>
          ns === 'shop' ? { 'postern.dev/inject': 'enabled' } : {},
        servesGateway: () => false,
      },
      logger: testLogger('webhook'),
    });
    t.teardown(() => labelled.close());

    const skipped = ['hostNetwork', 'opted out'];
    for (const [name, pod] of Object.entries(PODS)) {
      const { status, response, sentUid, ops, result } = await injected(post, labelled.port, pod);
      t.equal(status, 200, name);
      t.equal(response.uid, sentUid, `${name}: the uid echoed`);
      t.equal(response.allowed, true, `${name}: never refused`);
      if (skipped.includes(name)) {
        t.notOk(response.patch, `${name}: no patch`);
        continue;
      }
      t.equal(response.patchType, 'JSONPatch', name);
      t.doesNotThrow(
        () => new Pod(result as ConstructorParameters<typeof Pod>[0]).validate(),
        `${name}: a valid Pod`,
      );
      t.same(result, injectPod(pod).pod, `${name}: what injectPod makes`);
      t.ok(ops.length >= 3, `${name}: ${ops.map((o) => `${o.op} ${o.path}`).join(', ')}`);
      const again = await injected(post, labelled.port, result);
      t.notOk(again.response.patch, `${name}: injecting the injected pod changes nothing`);
    }
    const warned = await injected(post, labelled.port, PODS['no ports']);
    t.match(warned.response.warnings, [/postern: no container declares a port/]);
  },
);

t.test("the control plane's own webhook port: unlabelled namespaces opt in per pod", async (t) => {
  const { post, port } = await webhooks(t);
  const plain = await injected(post, port, PODS['one container']);
  t.notOk(plain.response.patch, 'a pod in a namespace without the label is left alone');
  const asked = await injected(post, port, PODS['opted in by annotation']);
  t.equal(asked.response.patchType, 'JSONPatch', 'a pod that asks is injected');
});

t.test('a request that is not an AdmissionReview gets 400, and an unknown path 404', async (t) => {
  const { post, port } = await webhooks(t);
  const garbage = await post(port, '/inject', 'not json');
  t.equal(garbage.status, 400);
  t.match(garbage.body, { error: { code: 'POSTERN_BAD_REVIEW', message: 'the body is not JSON' } });
  const wrong = await post(port, '/inject', {
    ...review(PODS['one container']),
    apiVersion: 'admission.k8s.io/v1beta1',
  });
  t.equal(wrong.status, 400);
  t.match(wrong.body, {
    error: { message: /expected an AdmissionReview of admission.k8s.io\/v1/ },
  });
  const noUid = await post(port, '/inject', {
    apiVersion: 'admission.k8s.io/v1',
    kind: 'AdmissionReview',
    request: {},
  });
  t.equal(noUid.status, 400);
  t.equal((await post(port, '/mutate', review({}))).status, 404);
});

t.test(
  'the validating webhook refuses an invalid RoutePolicy or HTTPRoute with the messages policy validate prints',
  async (t) => {
    const { mesh, post, port } = await webhooks(t);
    // This mesh's gateway is `edge` in shop (the function stands in for the control plane's registry).
    const serving = await clientCredentials(
      mesh.controlPlane.ca,
      'spiffe://cluster.local/ns/postern-system/sa/postern-control-plane',
      { dnsNames: ['localhost'] },
    );
    const ours = await startWebhookServer({
      port: 0,
      host: '127.0.0.1',
      tls: { cert: serving.cert, key: serving.key },
      deps: {
        settings: DEFAULT_INJECTION,
        namespaceLabels: () => ({}),
        servesGateway: ({ name, namespace }) => name === 'edge' && namespace === 'shop',
      },
      logger: testLogger('webhook'),
    });
    t.teardown(() => ours.close());
    const policy = {
      apiVersion: 'postern.dev/v1alpha1',
      kind: 'RoutePolicy',
      metadata: { name: 'orders-api', namespace: 'shop' },
      spec: { routes: [{ name: 'list', match: { methods: ['FETCH'] } }] },
    };
    const refused = (await post(port, '/validate', review(policy, 'RoutePolicy'))).body
      .response as ReviewResponse;
    t.equal(refused.allowed, false);
    t.equal(refused.status?.code, 422);
    t.match(
      refused.status?.message,
      /RoutePolicy shop\/orders-api: spec\.routes\[0\]\.match\.methods\[0\]: expected one of GET/,
    );
    const route = {
      apiVersion: 'gateway.networking.k8s.io/v1',
      kind: 'HTTPRoute',
      metadata: { name: 'shop', namespace: 'shop' },
      spec: {
        parentRefs: [{ name: 'edge' }],
        rules: [{ backendRefs: [{ name: 'orders', port: 80 }] }],
      },
    };
    const accepted = (await post(ours.port, '/validate', review(route, 'HTTPRoute'))).body
      .response as ReviewResponse;
    t.equal(accepted.allowed, true);
    const badRoute = { ...route, spec: { ...route.spec, hostnames: ['*.*.example.com'] } };
    const rejected = (await post(ours.port, '/validate', review(badRoute, 'HTTPRoute'))).body
      .response as ReviewResponse;
    t.equal(rejected.allowed, false);
    t.match(rejected.status?.message, /spec\.hostnames\[0\]/);
    // Another controller's route (an Istio gateway's, with features Postern lacks) is not Postern's to refuse.
    const istio = {
      ...route,
      spec: {
        parentRefs: [{ name: 'istio-ingress', namespace: 'istio-system' }],
        rules: [{ matches: [{ path: { type: 'RegularExpression', value: '/v[0-9]+/.*' } }] }],
      },
    };
    const foreign = (await post(ours.port, '/validate', review(istio, 'HTTPRoute'))).body
      .response as ReviewResponse;
    t.equal(foreign.allowed, true, "regression: /validate refused other controllers' HTTPRoutes");
  },
);
