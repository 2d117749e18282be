/**
 * What `kubectl apply -k manifests/` (and `-k manifests/example`) would
 * create, rendered by Debian's kubectl and checked object by object against
 * the official schemas (kubernetes-models); no API server runs here.
 */
import { execFileSync } from 'node:child_process';
import { join } from 'node:path';
import { MutatingWebhookConfiguration } from 'kubernetes-models/admissionregistration.k8s.io/v1/MutatingWebhookConfiguration';
import { ValidatingWebhookConfiguration } from 'kubernetes-models/admissionregistration.k8s.io/v1/ValidatingWebhookConfiguration';
import { CustomResourceDefinition } from 'kubernetes-models/apiextensions.k8s.io/v1/CustomResourceDefinition';
import { Deployment } from 'kubernetes-models/apps/v1/Deployment';
import { PodDisruptionBudget } from 'kubernetes-models/policy/v1/PodDisruptionBudget';
import { ClusterRole } from 'kubernetes-models/rbac.authorization.k8s.io/v1/ClusterRole';
import { ClusterRoleBinding } from 'kubernetes-models/rbac.authorization.k8s.io/v1/ClusterRoleBinding';
import { Namespace } from 'kubernetes-models/v1/Namespace';
import { Pod } from 'kubernetes-models/v1/Pod';
import { Service } from 'kubernetes-models/v1/Service';
import { ServiceAccount } from 'kubernetes-models/v1/ServiceAccount';
import t from 'tap';
import { parseAllDocuments } from 'yaml';
import { validateRoutePolicy } from '../common/policy/validate.ts';
import { injectionDecision, injectPod } from '../control-plane/webhooks/injection.ts';

// biome-ignore lint/suspicious/noExplicitAny: objects straight from YAML, checked by the schemas below
type K8sObject = any;

const MODELS: Record<string, new (data: K8sObject) => { validate(): void }> = {
  Namespace,
  ServiceAccount,
  Service,
  Deployment,
  PodDisruptionBudget,
  ClusterRole,
  ClusterRoleBinding,
  MutatingWebhookConfiguration,
  ValidatingWebhookConfiguration,
  CustomResourceDefinition,
};

function kustomize(dir: string): K8sObject[] {
  const yaml = execFileSync('kubectl', ['kustomize', join(import.meta.dirname, dir)], {
    encoding: 'utf8',
  });
  return parseAllDocuments(yaml).map((d) => d.toJS());
}

const find = (objects: K8sObject[], kind: string, name?: string) =>
  objects.find((o) => o.kind === kind && (name === undefined || o.metadata.name === name));

t.test(
  'every object of manifests/ and manifests/example is valid by the official schemas',
  async (t) => {
    for (const dir of ['.', 'example']) {
      for (const object of kustomize(dir)) {
        const label = `${dir}: ${object.kind} ${object.metadata?.name}`;
        if (object.kind === 'RoutePolicy') {
          t.same(validateRoutePolicy(object, label, new Date()).errors, [], label);
          continue;
        }
        const Model = MODELS[object.kind];
        if (!Model) {
          t.fail(`${label}: no schema to check it against`);
          continue;
        }
        t.doesNotThrow(() => new Model(object).validate(), label);
      }
    }
  },
);

t.test(
  'the control plane: two replicas, a disruption budget, probes, resources, non-root',
  async (t) => {
    const objects = kustomize('.');
    const deployment = find(objects, 'Deployment', 'postern-control-plane');
    t.equal(deployment.spec.replicas, 2);
    t.equal(find(objects, 'PodDisruptionBudget').spec.minAvailable, 1);
    const pod = deployment.spec.template.spec;
    const [container] = pod.containers;
    t.ok(container.readinessProbe && container.livenessProbe, 'probed');
    t.ok(container.resources.requests.memory && container.resources.limits.memory);
    t.match(pod.securityContext, {
      runAsNonRoot: true,
      seccompProfile: { type: 'RuntimeDefault' },
    });
    t.match(container.securityContext, {
      allowPrivilegeEscalation: false,
      readOnlyRootFilesystem: true,
      capabilities: { drop: ['ALL'] },
    });
    t.match(
      pod.volumes.find((v: K8sObject) => v.name === 'ca'),
      { secret: { secretName: 'postern-ca' } },
      'the CA from a Secret',
    );
    const service = find(objects, 'Service', 'postern-control-plane');
    t.same(
      service.spec.ports.map((p: K8sObject) => [p.port, p.targetPort]),
      [
        [15010, 'api'],
        [443, 'webhooks'],
      ],
    );
    t.equal(
      service.spec.sessionAffinity,
      'ClientIP',
      "a sidecar's acks reach the replica holding its watch",
    );
  },
);

t.test(
  'RBAC is least privilege: no wildcard, reads what discovery and bootstrap watch, writes only to HTTPRoute status, its own webhooks and the trust bundle',
  async (t) => {
    const role = find(kustomize('.'), 'ClusterRole', 'postern-control-plane');
    for (const rule of role.rules) {
      t.notOk(
        [...rule.verbs, ...rule.resources, ...rule.apiGroups].includes('*'),
        JSON.stringify(rule),
      );
      const writes = rule.verbs.filter((v: string) => !['get', 'list', 'watch'].includes(v));
      if (!writes.length) continue;
      // Creating a ConfigMap cannot be limited by name (the object has none yet): the trust bundle's, in each namespace.
      const allowed =
        rule.resources.join() === 'httproutes/status' ||
        rule.resourceNames?.length === 1 ||
        (rule.resources.join() === 'configmaps' && writes.join() === 'create') ||
        // A TokenReview is a question to the API server, stored nowhere.
        (rule.resources.join() === 'tokenreviews' && writes.join() === 'create');
      t.ok(allowed, `writes only where it must: ${JSON.stringify(rule)}`);
    }
    const grants = (group: string, resource: string, verb: string) =>
      role.rules.some(
        (r: K8sObject) =>
          r.apiGroups.includes(group) && r.resources.includes(resource) && r.verbs.includes(verb),
      );
    for (const [group, resource] of [
      ['postern.dev', 'routepolicies'],
      ['gateway.networking.k8s.io', 'httproutes'],
      ['', 'namespaces'],
      ['', 'pods'],
      ['', 'services'],
      ['discovery.k8s.io', 'endpointslices'],
    ])
      for (const verb of ['list', 'watch'])
        t.ok(grants(group, resource, verb), `${verb} ${resource}`);
    t.ok(grants('gateway.networking.k8s.io', 'httproutes/status', 'patch'));
    t.ok(grants('authentication.k8s.io', 'tokenreviews', 'create'));
    t.ok(grants('admissionregistration.k8s.io', 'mutatingwebhookconfigurations', 'patch'));
  },
);

t.test(
  'the webhooks never block pod creation by accident and skip the system namespaces',
  async (t) => {
    const objects = kustomize('.');
    const mutating = find(objects, 'MutatingWebhookConfiguration').webhooks[0];
    t.equal(mutating.failurePolicy, 'Ignore');
    t.ok(mutating.timeoutSeconds <= 5);
    t.match(mutating.clientConfig.service, { name: 'postern-control-plane', path: '/inject' });
    t.same(mutating.namespaceSelector.matchExpressions[0].values, [
      'kube-system',
      'kube-public',
      'kube-node-lease',
      'postern-system',
    ]);
    t.same(mutating.rules[0].resources, ['pods']);
    const validating = find(objects, 'ValidatingWebhookConfiguration').webhooks[0];
    t.match(validating.clientConfig.service, { path: '/validate' });
    t.same(
      validating.rules.map((r: K8sObject) => r.resources[0]),
      ['routepolicies', 'httproutes'],
    );
  },
);

t.test("the example's pods, injected as the webhook would, are valid Pods", async (t) => {
  const objects = kustomize('example');
  t.equal(find(objects, 'Namespace').metadata.labels['postern.dev/inject'], 'enabled');
  for (const deployment of objects.filter((o) => o.kind === 'Deployment')) {
    const template = deployment.spec.template;
    t.ok(injectionDecision(template, { 'postern.dev/inject': 'enabled' }).inject);
    const { pod, warnings } = injectPod(template);
    t.same(warnings, []);
    t.doesNotThrow(
      () => new Pod({ apiVersion: 'v1', kind: 'Pod', ...pod } as K8sObject).validate(),
      deployment.metadata.name,
    );
  }
});
