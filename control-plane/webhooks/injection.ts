/**
 * Sidecar injection: what the mutating webhook (/inject) and `postern
 * inject` do to a pod spec, as pure functions of the pod, its namespace's
 * labels and the mesh's settings. The webhook turns the result into a JSON
 * Patch; the CLI writes the mutated manifest.
 *
 * What a pod gets (DESIGN.md, Kubernetes injection):
 *   - `postern-init`, an init container that redirects the pod's traffic
 *     with iptables (`postern redirect`: inbound to 15006 except excluded
 *     ports, the app's outbound to 15001, the proxy's own UID exempt), with
 *     NET_ADMIN and NET_RAW and nothing else; or, with
 *     `postern.dev/redirect: explicit`, no init container and the app
 *     containers get HTTP_PROXY (as under `postern up`).
 *   - `postern-proxy`, the sidecar: a native sidecar (an init container with
 *     restartPolicy Always, started and ready before the app, and not holding
 *     a Job open), or with `postern.dev/native-sidecar: "false"` a plain
 *     container for clusters older than 1.29. Configured by POSTERN_*
 *     variables from the pod (downward API) and the spec; its bootstrap
 *     credential is a projected ServiceAccount token with audience `postern`.
 *     Non-root, read-only root filesystem, no privilege escalation, every
 *     capability dropped, seccomp RuntimeDefault; an in-memory emptyDir for
 *     anything transient.
 *   - The app's HTTP probes rewritten to the proxy's status port, which
 *     calls the app's own (the original ones travel in POSTERN_APP_PROBES),
 *     so they keep working when inbound traffic must be mTLS.
 */

import type { InjectionSettings } from '../../common/injection-settings.ts';
import { DEFAULT_INJECTION } from '../../common/injection-settings.ts';
import { parseCidr } from '../../common/policy/cidr.ts';

export type { InjectionSettings } from '../../common/injection-settings.ts';
export { DEFAULT_INJECTION } from '../../common/injection-settings.ts';

/** The parts of a container the injection reads or writes; the rest passes through. */
export interface Container {
  name: string;
  image?: string;
  ports?: { containerPort: number; name?: string; protocol?: string }[];
  env?: Record<string, unknown>[];
  livenessProbe?: Probe;
  readinessProbe?: Probe;
  startupProbe?: Probe;
  [field: string]: unknown;
}

export interface Probe {
  httpGet?: { path?: string; port: number | string; scheme?: string; host?: string };
  tcpSocket?: { port: number | string; host?: string };
  grpc?: { port: number };
  [field: string]: unknown;
}

export interface PodSpec {
  containers: Container[];
  initContainers?: Container[];
  volumes?: Record<string, unknown>[];
  hostNetwork?: boolean;
  serviceAccountName?: string;
  [field: string]: unknown;
}

export interface PodMetadata {
  name?: string;
  generateName?: string;
  namespace?: string;
  labels?: Record<string, string>;
  annotations?: Record<string, string>;
  [field: string]: unknown;
}

export interface PodTemplate {
  metadata?: PodMetadata;
  spec: PodSpec;
}

export const INJECT_LABEL = 'postern.dev/inject';
export const INJECT_ANNOTATION = 'postern.dev/inject';
/** Set on an injected pod, so injecting it again changes nothing. */
export const STATUS_ANNOTATION = 'postern.dev/status';
/**
 * The workload the pod's sidecar registers as, fixed at injection: the
 * control plane reads it from the pod, so relabelling a running pod (taking
 * it out of a Service to debug it, say) does not change who it is.
 */
export const WORKLOAD_ANNOTATION = 'postern.dev/workload';
export const REDIRECT_ANNOTATION = 'postern.dev/redirect';
export const NATIVE_SIDECAR_ANNOTATION = 'postern.dev/native-sidecar';
export const APP_PORT_ANNOTATION = 'postern.dev/app-port';
export const EXCLUDE_INBOUND_PORTS_ANNOTATION = 'postern.dev/exclude-inbound-ports';
export const EXCLUDE_OUTBOUND_PORTS_ANNOTATION = 'postern.dev/exclude-outbound-ports';
export const EXCLUDE_OUTBOUND_CIDRS_ANNOTATION = 'postern.dev/exclude-outbound-cidrs';
const RESOURCE_ANNOTATIONS = {
  cpu: 'postern.dev/proxy-cpu',
  memory: 'postern.dev/proxy-memory',
  cpuLimit: 'postern.dev/proxy-cpu-limit',
  memoryLimit: 'postern.dev/proxy-memory-limit',
} as const;

export const PROXY_CONTAINER = 'postern-proxy';
export const INIT_CONTAINER = 'postern-init';
/** The proxy's UID and GID (Istio's number): iptables exempts its traffic from redirection. */
export const PROXY_UID = 1337;
export const PORTS = Object.freeze({
  inbound: 15006,
  outbound: 15001,
  admin: 15000,
  status: 15021,
});

/**
 * The proxy's resources unless annotations say otherwise: the bench measured
 * ~0.22 core per 1,000 rps, 121 MB RSS steady and 163 MB after saturation.
 */
const DEFAULT_RESOURCES = Object.freeze({
  cpu: '100m',
  memory: '128Mi',
  cpuLimit: '2',
  memoryLimit: '256Mi',
});

const TOKEN_DIR = '/var/run/secrets/postern/tokens';
const CA_DIR = '/var/run/secrets/postern/ca';
const TMP_DIR = '/tmp';
const VOLUMES = Object.freeze({
  token: 'postern-token',
  ca: 'postern-ca',
  tmp: 'postern-tmp',
});

export type Decision =
  | { readonly inject: true }
  | { readonly inject: false; readonly reason: string };

/**
 * Whether a pod is injected: the pod's annotation wins ("true" or "false"),
 * else its namespace's label `postern.dev/inject: enabled`; never a
 * hostNetwork pod (its traffic is the node's) nor one already injected.
 * `namespaceLabels` undefined: offline (`postern inject`), where asking for
 * it is the opt-in.
 */
export function injectionDecision(
  pod: PodTemplate,
  namespaceLabels: Readonly<Record<string, string>> | undefined,
): Decision {
  const annotations = pod.metadata?.annotations ?? {};
  if (annotations[STATUS_ANNOTATION] === 'injected' || hasProxy(pod.spec))
    return { inject: false, reason: 'already injected' };
  if (pod.spec.hostNetwork) return { inject: false, reason: 'hostNetwork pod' };
  // The sidecar's security context (UIDs, capabilities, seccomp) and iptables are Linux's.
  if ((pod.spec.os as { name?: string } | undefined)?.name === 'windows')
    return { inject: false, reason: 'Windows pod' };
  const override = annotations[INJECT_ANNOTATION];
  if (override === 'false')
    return { inject: false, reason: `annotation ${INJECT_ANNOTATION}: "false"` };
  if (override === 'true') return { inject: true };
  if (namespaceLabels === undefined) return { inject: true };
  if (namespaceLabels[INJECT_LABEL] === 'enabled') return { inject: true };
  return { inject: false, reason: `namespace not labelled ${INJECT_LABEL}: enabled` };
}

function hasProxy(spec: PodSpec): boolean {
  return [...spec.containers, ...(spec.initContainers ?? [])].some(
    (c) => c.name === PROXY_CONTAINER,
  );
}

export interface Injected {
  readonly pod: PodTemplate;
  /** What the person applying should know (no port to send inbound traffic to, say). */
  readonly warnings: readonly string[];
}

/**
 * The workload name a pod's sidecar registers as: its app label, else its
 * service account. Injection writes it into WORKLOAD_ANNOTATION, where the
 * control plane reads it back (kubernetes/pod-index.ts).
 */
export function workloadOf(
  labels: Readonly<Record<string, string>>,
  serviceAccount: string | undefined,
): string {
  return labels['app.kubernetes.io/name'] ?? labels.app ?? serviceAccount ?? 'default';
}

/** The app's port: the annotation, else the first TCP port of the first container that declares one. */
function appPort(pod: PodTemplate, warnings: string[]): number {
  const annotated = pod.metadata?.annotations?.[APP_PORT_ANNOTATION];
  if (annotated !== undefined) {
    const port = Number(annotated);
    if (Number.isInteger(port) && port > 0 && port < 65536) return port;
    warnings.push(
      `${APP_PORT_ANNOTATION}: ${JSON.stringify(annotated)} is not a port; using the container ports`,
    );
  }
  for (const container of pod.spec.containers) {
    const port = container.ports?.find((p) => (p.protocol ?? 'TCP') === 'TCP');
    if (port) return port.containerPort;
  }
  warnings.push(
    `no container declares a port and ${APP_PORT_ANNOTATION} is not set: inbound traffic goes to 8080`,
  );
  return 8080;
}

const PROBE_KINDS = [
  ['livenessProbe', 'livez'],
  ['readinessProbe', 'readyz'],
  ['startupProbe', 'startupz'],
] as const;

/** A probe's port as a number: a named port resolved against the container's ports. */
function probePort(container: Container, port: number | string): number | undefined {
  if (typeof port === 'number') return port;
  if (/^\d+$/.test(port)) return Number(port);
  return container.ports?.find((p) => p.name === port)?.containerPort;
}

/**
 * Rewrites each HTTP and TCP probe of the app's containers (its restartable
 * init containers too) to the proxy's status port; returns the originals by
 * the path that now stands for them. A TCP probe would otherwise be
 * redirected to the sidecar, which always accepts: it would check nothing.
 * A gRPC probe, or one whose named port no container declares, is left as it
 * is and said in `warnings`: it reaches the sidecar in plaintext and fails.
 */
function rewriteProbes(containers: Container[], warnings: string[]): Record<string, unknown> {
  const originals: Record<string, unknown> = {};
  for (const container of containers) {
    for (const [kind, suffix] of PROBE_KINDS) {
      const probe = container[kind];
      if (!probe) continue;
      const path = `/app-health/${container.name}/${suffix}`;
      if (probe.grpc) {
        warnings.push(
          `${container.name}'s ${kind} is gRPC, which the sidecar does not relay: exclude port ${probe.grpc.port} (${EXCLUDE_INBOUND_PORTS_ANNOTATION}) or use an HTTP probe`,
        );
        continue;
      }
      if (probe.tcpSocket) {
        const port = probePort(container, probe.tcpSocket.port);
        if (port === undefined) {
          warnings.push(
            `${container.name}'s ${kind} names a port no container declares: left as it is`,
          );
          continue;
        }
        originals[path] = { tcp: true, port };
        const { tcpSocket: _tcp, ...rest } = probe;
        container[kind] = { ...rest, httpGet: { path, port: PORTS.status, scheme: 'HTTP' } };
        continue;
      }
      if (!probe.httpGet) continue;
      const port = probePort(container, probe.httpGet.port);
      if (port === undefined) {
        warnings.push(
          `${container.name}'s ${kind} names a port no container declares: left as it is`,
        );
        continue;
      }
      // `host` is where the kubelet would connect (the app is on loopback here); a Host header travels in httpHeaders.
      originals[path] = {
        path: probe.httpGet.path ?? '/',
        port,
        scheme: probe.httpGet.scheme ?? 'HTTP',
        ...(probe.httpGet['httpHeaders' as keyof typeof probe.httpGet]
          ? { httpHeaders: probe.httpGet['httpHeaders' as keyof typeof probe.httpGet] }
          : {}),
      };
      container[kind] = { ...probe, httpGet: { path, port: PORTS.status, scheme: 'HTTP' } };
    }
  }
  return originals;
}

const fieldEnv = (name: string, fieldPath: string) => ({
  name,
  valueFrom: { fieldRef: { fieldPath } },
});

const CPU = /^([0-9]+(?:\.[0-9]+)?)(m?)$/;
const MEMORY = /^([0-9]+(?:\.[0-9]+)?)(Ki|Mi|Gi|Ti|k|M|G|T)?$/;
const MEMORY_UNITS: Record<string, number> = {
  '': 1,
  k: 1e3,
  M: 1e6,
  G: 1e9,
  T: 1e12,
  Ki: 2 ** 10,
  Mi: 2 ** 20,
  Gi: 2 ** 30,
  Ti: 2 ** 40,
};

/** A resource quantity as a number (cores, bytes), or undefined when it is not one we read. */
function quantity(kind: 'cpu' | 'memory', text: string): number | undefined {
  const match = (kind === 'cpu' ? CPU : MEMORY).exec(text);
  if (!match) return undefined;
  const value = Number(match[1]);
  return kind === 'cpu' ? (match[2] ? value / 1000 : value) : value * MEMORY_UNITS[match[2] ?? '']!;
}

/**
 * The proxy's resources from the annotations, each checked: a value that is
 * not a quantity falls back to the default, and a request above its limit
 * (which the API server would refuse, and the pod with it) raises the
 * limit to it; both with a warning.
 */
function resources(annotations: Readonly<Record<string, string>>, warnings: string[]) {
  const pick = (key: keyof typeof RESOURCE_ANNOTATIONS, kind: 'cpu' | 'memory') => {
    const given = annotations[RESOURCE_ANNOTATIONS[key]];
    if (given === undefined) return DEFAULT_RESOURCES[key];
    if (quantity(kind, given) !== undefined) return given;
    warnings.push(
      `${RESOURCE_ANNOTATIONS[key]}: ${JSON.stringify(given)} is not a quantity; using ${DEFAULT_RESOURCES[key]}`,
    );
    return DEFAULT_RESOURCES[key];
  };
  const chosen = {
    requests: { cpu: pick('cpu', 'cpu'), memory: pick('memory', 'memory') },
    limits: { cpu: pick('cpuLimit', 'cpu'), memory: pick('memoryLimit', 'memory') },
  };
  for (const kind of ['cpu', 'memory'] as const) {
    if (quantity(kind, chosen.requests[kind])! > quantity(kind, chosen.limits[kind])!) {
      warnings.push(
        `the proxy's ${kind} request ${chosen.requests[kind]} is above its limit ${chosen.limits[kind]}, which Kubernetes refuses: the limit is raised to the request`,
      );
      chosen.limits[kind] = chosen.requests[kind];
    }
  }
  return chosen;
}

const list = (text: string | undefined) =>
  (text ?? '')
    .split(',')
    .map((item) => item.trim())
    .filter(Boolean);

const IS_PORT = (item: string) =>
  /^\d{1,5}$/.test(item) && Number(item) >= 1 && Number(item) <= 65535;
const IS_CIDR = (item: string) => parseCidr(item) !== undefined;

/** An exclusion annotation's entries that `postern redirect` accepts; the rest dropped with a warning (it would crash the init container). */
function checkedList(
  annotations: Readonly<Record<string, string>>,
  name: string,
  valid: (item: string) => boolean,
  warnings: string[],
): string[] {
  const items = list(annotations[name]);
  const bad = items.filter((item) => !valid(item));
  if (bad.length) warnings.push(`${name}: ignored ${bad.map((b) => JSON.stringify(b)).join(', ')}`);
  return items.filter(valid);
}

function proxyContainer(
  pod: PodTemplate,
  settings: InjectionSettings,
  port: number,
  probes: Record<string, unknown>,
  native: boolean,
  warnings: string[],
): Container {
  const labels = Object.entries(pod.metadata?.labels ?? {})
    .map(([k, v]) => `${k}=${v}`)
    .join(',');
  return {
    name: PROXY_CONTAINER,
    image: settings.image,
    args: ['sidecar'],
    ...(native ? { restartPolicy: 'Always' } : {}),
    env: [
      fieldEnv('POSTERN_POD', 'metadata.name'),
      fieldEnv('POSTERN_NAMESPACE', 'metadata.namespace'),
      fieldEnv('POSTERN_SERVICE_ACCOUNT', 'spec.serviceAccountName'),
      fieldEnv('POSTERN_POD_IP', 'status.podIP'),
      {
        name: 'POSTERN_WORKLOAD',
        value: workloadOf(pod.metadata?.labels ?? {}, pod.spec.serviceAccountName),
      },
      { name: 'POSTERN_LABELS', value: labels },
      { name: 'POSTERN_TRUST_DOMAIN', value: settings.trustDomain },
      { name: 'POSTERN_APP_PORT', value: String(port) },
      { name: 'POSTERN_CONTROL_PLANE', value: settings.controlPlaneUrl },
      { name: 'POSTERN_CA_FILE', value: `${CA_DIR}/ca.crt` },
      { name: 'POSTERN_BOOTSTRAP_TOKEN_FILE', value: `${TOKEN_DIR}/postern-token` },
      { name: 'POSTERN_ADVERTISE', value: `$(POSTERN_POD_IP):${PORTS.inbound}` },
      { name: 'POSTERN_STATUS_PORT', value: String(PORTS.status) },
      { name: 'POSTERN_APP_PROBES', value: JSON.stringify(probes) },
    ],
    // Named so that discovery finds where the pod takes mesh traffic (kubernetes/pod-index.ts).
    ports: [
      { name: 'postern-inbound', containerPort: PORTS.inbound, protocol: 'TCP' },
      { name: 'postern-status', containerPort: PORTS.status, protocol: 'TCP' },
    ],
    // Ready once it holds a certificate and a policy snapshot: the app starts after (native sidecar).
    startupProbe: {
      httpGet: { path: '/healthz/ready', port: PORTS.status },
      periodSeconds: 1,
      failureThreshold: 600,
    },
    readinessProbe: {
      httpGet: { path: '/healthz/ready', port: PORTS.status },
      periodSeconds: 5,
    },
    resources: resources(pod.metadata?.annotations ?? {}, warnings),
    securityContext: {
      runAsUser: PROXY_UID,
      runAsGroup: PROXY_UID,
      runAsNonRoot: true,
      readOnlyRootFilesystem: true,
      allowPrivilegeEscalation: false,
      privileged: false,
      capabilities: { drop: ['ALL'] },
      seccompProfile: { type: 'RuntimeDefault' },
    },
    volumeMounts: [
      { name: VOLUMES.token, mountPath: TOKEN_DIR, readOnly: true },
      { name: VOLUMES.ca, mountPath: CA_DIR, readOnly: true },
      { name: VOLUMES.tmp, mountPath: TMP_DIR },
    ],
  };
}

function initContainer(
  pod: PodTemplate,
  settings: InjectionSettings,
  warnings: string[],
): Container {
  const annotations = pod.metadata?.annotations ?? {};
  const excludedInbound = [
    String(PORTS.status),
    ...checkedList(annotations, EXCLUDE_INBOUND_PORTS_ANNOTATION, IS_PORT, warnings),
  ];
  const outboundPorts = checkedList(
    annotations,
    EXCLUDE_OUTBOUND_PORTS_ANNOTATION,
    IS_PORT,
    warnings,
  );
  const outboundCidrs = checkedList(
    annotations,
    EXCLUDE_OUTBOUND_CIDRS_ANNOTATION,
    IS_CIDR,
    warnings,
  );
  return {
    name: INIT_CONTAINER,
    image: settings.image,
    args: [
      'redirect',
      ...['--inbound-port', String(PORTS.inbound), '--outbound-port', String(PORTS.outbound)],
      ...['--proxy-uid', String(PROXY_UID)],
      ...['--exclude-inbound-ports', excludedInbound.join(',')],
      ...(outboundPorts.length ? ['--exclude-outbound-ports', outboundPorts.join(',')] : []),
      ...(outboundCidrs.length ? ['--exclude-outbound-cidrs', outboundCidrs.join(',')] : []),
    ],
    resources: {
      requests: { cpu: '10m', memory: '32Mi' },
      limits: { cpu: '100m', memory: '64Mi' },
    },
    securityContext: {
      // iptables needs root in the pod's network namespace, and only these two capabilities.
      runAsUser: 0,
      runAsNonRoot: false,
      readOnlyRootFilesystem: true,
      allowPrivilegeEscalation: false,
      privileged: false,
      capabilities: { add: ['NET_ADMIN', 'NET_RAW'], drop: ['ALL'] },
      seccompProfile: { type: 'RuntimeDefault' },
    },
  };
}

function volumes(settings: InjectionSettings): Record<string, unknown>[] {
  return [
    {
      name: VOLUMES.token,
      projected: {
        sources: [
          {
            serviceAccountToken: {
              audience: 'postern',
              expirationSeconds: 3600,
              path: 'postern-token',
            },
          },
        ],
      },
    },
    { name: VOLUMES.ca, configMap: { name: settings.caConfigMap } },
    { name: VOLUMES.tmp, emptyDir: { medium: 'Memory', sizeLimit: '16Mi' } },
  ];
}

/** The app containers' egress through the proxy's outbound port, for pods that opt out of iptables. */
function explicitProxyEnv(container: Container): Container {
  const proxy = `http://127.0.0.1:${PORTS.outbound}`;
  const kept = (container.env ?? []).filter(
    (e) => !['HTTP_PROXY', 'http_proxy', 'NO_PROXY', 'no_proxy'].includes(String(e.name)),
  );
  return {
    ...container,
    env: [
      ...kept,
      { name: 'HTTP_PROXY', value: proxy },
      { name: 'http_proxy', value: proxy },
      { name: 'NO_PROXY', value: 'localhost,127.0.0.1' },
    ],
  };
}

/** Pod Security levels that forbid the redirect init container (root with NET_ADMIN and NET_RAW). */
const STRICT_POD_SECURITY = new Set(['baseline', 'restricted']);

/**
 * The pod with its sidecar (assumes injectionDecision said inject). A
 * namespace whose Pod Security enforces baseline or restricted would refuse
 * the redirect init container, and the pod with it: such pods get explicit
 * mode instead, with a warning.
 */
export function injectPod(
  pod: PodTemplate,
  settings: InjectionSettings = DEFAULT_INJECTION,
  namespaceLabels: Readonly<Record<string, string>> = {},
): Injected {
  const warnings: string[] = [];
  const copy = structuredClone(pod);
  const annotations = copy.metadata?.annotations ?? {};
  const enforced = namespaceLabels['pod-security.kubernetes.io/enforce'];
  const forced = enforced !== undefined && STRICT_POD_SECURITY.has(enforced);
  const explicit = annotations[REDIRECT_ANNOTATION] === 'explicit' || forced;
  if (forced && annotations[REDIRECT_ANNOTATION] !== 'explicit')
    warnings.push(
      `the namespace enforces Pod Security "${enforced}", which refuses the iptables init container: explicit mode (the app's egress through HTTP_PROXY; inbound only as mTLS to port ${PORTS.inbound})`,
    );
  const native = annotations[NATIVE_SIDECAR_ANNOTATION] !== 'false';
  const port = appPort(copy, warnings);
  // The pod's own native sidecars are probed like its containers, and their ports are redirected too.
  const restartable = (copy.spec.initContainers ?? []).filter((c) => c.restartPolicy === 'Always');
  const probes = rewriteProbes([...copy.spec.containers, ...restartable], warnings);
  const proxy = proxyContainer(copy, settings, port, probes, native, warnings);
  const containers = explicit ? copy.spec.containers.map(explicitProxyEnv) : copy.spec.containers;
  const spec: PodSpec = {
    ...copy.spec,
    initContainers: [
      ...(explicit ? [] : [initContainer(copy, settings, warnings)]),
      ...(native ? [proxy] : []),
      ...(copy.spec.initContainers ?? []),
    ],
    containers: native ? containers : [...containers, proxy],
    volumes: [...(copy.spec.volumes ?? []), ...volumes(settings)],
  };
  return {
    pod: {
      ...copy,
      metadata: {
        ...copy.metadata,
        annotations: {
          ...annotations,
          [STATUS_ANNOTATION]: 'injected',
          [WORKLOAD_ANNOTATION]: workloadOf(
            copy.metadata?.labels ?? {},
            copy.spec.serviceAccountName,
          ),
        },
      },
      spec,
    },
    warnings,
  };
}
