import { Pod } from 'kubernetes-models/v1/Pod';
import t from 'tap';
import { parseAppProbes } from '../../sidecar/listeners/status.ts';
import { PODS } from '../../test/fixtures/pods.ts';
import {
  type Container,
  DEFAULT_INJECTION,
  injectionDecision,
  injectPod,
  type PodTemplate,
} from './injection.ts';

const ENABLED = { 'postern.dev/inject': 'enabled', 'kubernetes.io/metadata.name': 'shop' };
const PLAIN = { 'kubernetes.io/metadata.name': 'shop' };

/** Validates against the official Pod schema; throws with the schema's complaint. */
const valid = (pod: PodTemplate) => new Pod(pod as ConstructorParameters<typeof Pod>[0]).validate();

const env = (container: Container, name: string) =>
  (container.env as { name: string; value?: string }[] | undefined)?.find((e) => e.name === name)
    ?.value;

t.test(
  'who gets a sidecar: the namespace label, the pod annotation over it, never hostNetwork or twice',
  async (t) => {
    t.same(injectionDecision(PODS['one container'], ENABLED), { inject: true });
    t.match(injectionDecision(PODS['one container'], PLAIN), {
      inject: false,
      reason: /namespace not labelled postern.dev\/inject: enabled/,
    });
    t.same(injectionDecision(PODS['opted in by annotation'], PLAIN), { inject: true });
    t.match(injectionDecision(PODS['opted out'], ENABLED), { inject: false, reason: /"false"/ });
    t.match(injectionDecision(PODS.hostNetwork, ENABLED), {
      inject: false,
      reason: 'hostNetwork pod',
    });
    const injected = injectPod(PODS['one container']).pod;
    t.match(injectionDecision(injected, ENABLED), { inject: false, reason: 'already injected' });
    t.same(
      injectionDecision(PODS['one container'], undefined),
      { inject: true },
      'offline, asking is opting in',
    );
  },
);

t.test('every injected pod is a valid Pod by the official schema', async (t) => {
  for (const [name, pod] of Object.entries(PODS)) {
    if (!injectionDecision(pod, ENABLED).inject) continue;
    t.doesNotThrow(() => valid(injectPod(pod).pod), name);
  }
});

t.test(
  "the proxy is a native sidecar after the redirect init container and before the pod's own",
  async (t) => {
    const { pod } = injectPod(PODS['existing init containers']);
    t.same(
      pod.spec.initContainers!.map((c) => c.name),
      ['postern-init', 'postern-proxy', 'migrate'],
    );
    const proxy = pod.spec.initContainers![1]!;
    t.equal(proxy.restartPolicy, 'Always');
    t.same(
      pod.spec.containers.map((c) => c.name),
      ['billing'],
    );
    t.equal(env(proxy, 'POSTERN_APP_PORT'), '8443');
    t.equal(env(proxy, 'POSTERN_WORKLOAD'), 'billing');
    t.equal(
      pod.metadata?.annotations?.['postern.dev/workload'],
      'billing',
      'the workload is fixed on the pod, where the control plane reads it back',
    );
    t.equal(env(proxy, 'POSTERN_LABELS'), 'app=billing,pod-template-hash=7d9f8c6b5');
    t.equal(env(proxy, 'POSTERN_ADVERTISE'), '$(POSTERN_POD_IP):15006');
    t.match(proxy.securityContext, {
      runAsNonRoot: true,
      runAsUser: 1337,
      readOnlyRootFilesystem: true,
      allowPrivilegeEscalation: false,
      capabilities: { drop: ['ALL'] },
      seccompProfile: { type: 'RuntimeDefault' },
    });
    t.match(pod.spec.initContainers![0]!.securityContext, {
      capabilities: { add: ['NET_ADMIN', 'NET_RAW'], drop: ['ALL'] },
    });
    t.match(pod.spec.volumes, [
      { name: 'kube-api-access-x7k2p' },
      {
        name: 'postern-token',
        projected: { sources: [{ serviceAccountToken: { audience: 'postern' } }] },
      },
      { name: 'postern-ca', configMap: { name: DEFAULT_INJECTION.caConfigMap } },
      { name: 'postern-tmp', emptyDir: { medium: 'Memory' } },
    ]);
  },
);

t.test(
  "HTTP probes go through the proxy's status port, the originals with it; exec probes stay",
  async (t) => {
    const { pod } = injectPod(PODS['several containers, named ports, every probe kind']);
    const [web, shipper] = pod.spec.containers as [Container, Container];
    t.same(web.livenessProbe!.httpGet, {
      path: '/app-health/web/livez',
      port: 15021,
      scheme: 'HTTP',
    });
    t.same(web.readinessProbe!.httpGet, {
      path: '/app-health/web/readyz',
      port: 15021,
      scheme: 'HTTP',
    });
    t.same(web.startupProbe!.httpGet, {
      path: '/app-health/web/startupz',
      port: 15021,
      scheme: 'HTTP',
    });
    t.equal(web.livenessProbe!.periodSeconds, 10, 'timing kept');
    t.same(shipper.readinessProbe, { exec: { command: ['cat', '/tmp/ready'] }, periodSeconds: 5 });
    const proxy = pod.spec.initContainers!.find((c) => c.name === 'postern-proxy')!;
    t.same(JSON.parse(env(proxy, 'POSTERN_APP_PROBES')!), {
      '/app-health/web/livez': { path: '/livez', port: 3000, scheme: 'HTTP' },
      '/app-health/web/readyz': { path: '/readyz', port: 3000, scheme: 'HTTP' },
      '/app-health/web/startupz': { path: '/started', port: 3000, scheme: 'HTTP' },
    });
    t.equal(env(proxy, 'POSTERN_APP_PORT'), '3000', 'the first declared port');
    t.equal(
      parseAppProbes(env(proxy, 'POSTERN_APP_PROBES')!).size,
      3,
      "what the sidecar's --app-probes reads",
    );
  },
);

t.test(
  'explicit mode: no iptables, the app uses HTTP_PROXY; a plain container when native sidecars are off',
  async (t) => {
    const { pod } = injectPod(PODS['a Job pod (explicit mode, no native sidecar)']);
    t.same(pod.spec.initContainers, [], 'no redirect init container, no native sidecar');
    t.same(
      pod.spec.containers.map((c) => c.name),
      ['report', 'postern-proxy'],
    );
    const [report, proxy] = pod.spec.containers as [Container, Container];
    t.equal(env(report, 'HTTP_PROXY'), 'http://127.0.0.1:15001', "the proxy's, not the old one");
    t.equal(
      (report.env as unknown[]).filter((e) => (e as { name: string }).name === 'HTTP_PROXY').length,
      1,
    );
    t.notOk('restartPolicy' in proxy);
    t.equal(env(proxy, 'POSTERN_APP_PORT'), '8000', 'the annotation');
    t.match(proxy.resources, {
      requests: { memory: '96Mi', cpu: '100m' },
      limits: { memory: '256Mi' },
    });
  },
);

t.test('a pod with no port says where inbound traffic goes instead', async (t) => {
  const { warnings } = injectPod(PODS['no ports']);
  t.match(warnings, [/no container declares a port .* inbound traffic goes to 8080/]);
});

t.test('injection leaves the pod it was given as it was', async (t) => {
  const pod = PODS['one container'];
  const before = JSON.stringify(pod);
  injectPod(pod);
  t.equal(JSON.stringify(pod), before);
});

t.test(
  'regression: pods the API server would refuse or that could never be ready (review of the injection)',
  async (t) => {
    const base = PODS['one container'];
    const withAnnotations = (annotations: Record<string, string>): PodTemplate => ({
      ...base,
      metadata: { ...base.metadata, annotations },
    });

    t.match(
      injectionDecision({ ...base, spec: { ...base.spec, os: { name: 'windows' } } }, ENABLED),
      { inject: false, reason: 'Windows pod' },
    );

    const strict = injectPod(base, DEFAULT_INJECTION, {
      ...ENABLED,
      'pod-security.kubernetes.io/enforce': 'restricted',
    });
    t.notOk(
      strict.pod.spec.initContainers!.some((c) => c.name === 'postern-init'),
      'Pod Security restricted: no NET_ADMIN init container',
    );
    t.equal(env(strict.pod.spec.containers[0]!, 'HTTP_PROXY'), 'http://127.0.0.1:15001');
    t.match(strict.warnings, [/enforces Pod Security "restricted".*explicit mode/]);

    const resources = injectPod(
      withAnnotations({ 'postern.dev/proxy-memory': '512Mi', 'postern.dev/proxy-cpu': 'lots' }),
    );
    const proxy = resources.pod.spec.initContainers!.find((c) => c.name === 'postern-proxy')!;
    t.match(proxy.resources, {
      requests: { cpu: '100m', memory: '512Mi' },
      limits: { memory: '512Mi' },
    });
    t.match(resources.warnings, [
      /postern.dev\/proxy-cpu: "lots" is not a quantity/,
      /memory request 512Mi is above its limit 256Mi/,
    ]);
    t.doesNotThrow(() => valid(resources.pod));

    const excluded = injectPod(
      withAnnotations({
        'postern.dev/exclude-inbound-ports': '9090, abc',
        'postern.dev/exclude-outbound-cidrs': '10.0.0.0/8,not-a-cidr',
      }),
    );
    const init = excluded.pod.spec.initContainers!.find((c) => c.name === 'postern-init')!;
    t.same(init.args, [
      'redirect',
      '--inbound-port',
      '15006',
      '--outbound-port',
      '15001',
      '--proxy-uid',
      '1337',
      '--exclude-inbound-ports',
      '15021,9090',
      '--exclude-outbound-cidrs',
      '10.0.0.0/8',
    ]);
    t.match(excluded.warnings, [
      /exclude-inbound-ports: ignored "abc"/,
      /exclude-outbound-cidrs: ignored "not-a-cidr"/,
    ]);

    const probed = injectPod({
      ...base,
      spec: {
        ...base.spec,
        initContainers: [
          {
            name: 'cache',
            image: 'cache:1',
            restartPolicy: 'Always',
            ports: [{ containerPort: 6380 }],
            readinessProbe: { tcpSocket: { port: 6380 }, periodSeconds: 3 },
          },
        ],
        containers: [
          {
            name: 'api',
            image: 'api:1',
            ports: [{ containerPort: 8080 }],
            livenessProbe: { tcpSocket: { port: 8080 } },
            readinessProbe: { grpc: { port: 9000 } },
          },
        ],
      },
    });
    const [api] = probed.pod.spec.containers as [Container];
    t.same(
      api.livenessProbe,
      {
        httpGet: { path: '/app-health/api/livez', port: 15021, scheme: 'HTTP' },
      },
      'a TCP probe goes through the status port (redirected, it would always succeed)',
    );
    t.same(api.readinessProbe, { grpc: { port: 9000 } });
    t.match(probed.warnings, [/api's readinessProbe is gRPC/]);
    const cache = probed.pod.spec.initContainers!.find((c) => c.name === 'cache')!;
    t.same(
      cache.readinessProbe!.httpGet,
      {
        path: '/app-health/cache/readyz',
        port: 15021,
        scheme: 'HTTP',
      },
      "the pod's own native sidecar's probe too",
    );
    const proxyEnv = probed.pod.spec.initContainers!.find((c) => c.name === 'postern-proxy')!;
    t.same(JSON.parse(env(proxyEnv, 'POSTERN_APP_PROBES')!), {
      '/app-health/api/livez': { tcp: true, port: 8080 },
      '/app-health/cache/readyz': { tcp: true, port: 6380 },
    });
    t.doesNotThrow(() => valid(probed.pod));
  },
);
