import { isIP } from 'node:net';
import type { KubeConfig, KubernetesObject } from '@kubernetes/client-node';
import type { Logger } from '../../common/log.ts';
import type { Discovered, DiscoveredEndpoint } from '../snapshot-hub.ts';
import type { MeshPod, PodIndex } from './pod-index.ts';
import { ENDPOINT_SLICES, ResourceInformer, SERVICES } from './resource-informer.ts';

/** How long discovery lets events gather before recomputing the endpoints. */
const UPDATE_DELAY_MS = 50;

/** The label an EndpointSlice names its Service by. */
const SERVICE_NAME_LABEL = 'kubernetes.io/service-name';

interface ServiceObject extends KubernetesObject {
  spec?: { type?: string };
}

interface EndpointSliceObject extends KubernetesObject {
  addressType?: string;
  endpoints?: {
    addresses?: string[];
    conditions?: { ready?: boolean | null };
    targetRef?: { kind?: string; namespace?: string; name?: string; uid?: string };
  }[];
}

/**
 * The mesh endpoints of every Service, from the cluster's objects: each
 * ready endpoint of a Service's EndpointSlices that is a live pod with our
 * sidecar, at the pod's IP and the sidecar's inbound port, with the SPIFFE
 * ID of the pod's service account (what the caller's sidecar verifies).
 * Endpoints without a sidecar are left out: mesh traffic to them would not
 * be answered by mTLS. An EndpointSlice is anybody's to write in its
 * namespace, so it only selects: the pod must be in the slice's namespace,
 * named with its UID, and the address must be the pod's own. Sorted and
 * free of duplicates, so the same objects give the same registry on every
 * control-plane replica whatever order they were listed in.
 */
export function discoveredEndpoints(
  services: readonly KubernetesObject[],
  slices: readonly KubernetesObject[],
  podNamed: (namespace: string, name: string) => MeshPod | undefined,
): DiscoveredEndpoint[] {
  const serviceNames = new Set<string>();
  for (const service of services as ServiceObject[]) {
    // An ExternalName Service has no endpoints of its own: its name is DNS for somewhere else.
    if (service.spec?.type === 'ExternalName') continue;
    serviceNames.add(`${service.metadata?.namespace}/${service.metadata?.name}`);
  }
  const found = new Map<string, { endpoint: DiscoveredEndpoint; pod: MeshPod }>();
  for (const slice of slices as EndpointSliceObject[]) {
    const namespace = slice.metadata?.namespace;
    const service = slice.metadata?.labels?.[SERVICE_NAME_LABEL];
    // A slice outlives its Service for a moment (garbage collection): the Service decides.
    if (!namespace || !service || !serviceNames.has(`${namespace}/${service}`)) continue;
    if (slice.addressType !== 'IPv4' && slice.addressType !== 'IPv6') continue;
    for (const endpoint of slice.endpoints ?? []) {
      // discovery.k8s.io/v1: an unset `ready` means ready.
      if (endpoint.conditions?.ready === false) continue;
      const ref = endpoint.targetRef;
      if (ref?.kind !== 'Pod' || !ref.name || !ref.uid) continue;
      if (ref.namespace !== undefined && ref.namespace !== namespace) continue;
      const pod = podNamed(namespace, ref.name);
      if (!pod?.live || pod.inboundPort === undefined || ref.uid !== pod.uid) continue;
      const ip = endpoint.addresses?.[0];
      if (!ip || !pod.ips.includes(ip)) continue;
      const address = isIP(ip) === 6 ? `[${ip}]:${pod.inboundPort}` : `${ip}:${pod.inboundPort}`;
      const key = `${namespace}/${service} ${address}`;
      // Two live pods claiming one address (one being deleted): the same choice on every replica.
      const held = found.get(key);
      if (held && preferred(held.pod, pod) === held.pod) continue;
      found.set(key, {
        pod,
        endpoint: {
          entry: { service, namespace, address, spiffeId: pod.spiffeId },
          workload: pod.workload,
          namespace: pod.namespace,
          labels: pod.labels,
        },
      });
    }
  }
  return [...found.keys()].sort().map((key) => found.get(key)!.endpoint);
}

/** Of two pods at one address: the one not being deleted, else the lower UID. */
function preferred(a: MeshPod, b: MeshPod): MeshPod {
  if (a.terminating !== b.terminating) return a.terminating ? b : a;
  return a.uid < b.uid ? a : b;
}

/**
 * What discovery knows of the live pods beside the endpoints: injected pods
 * per workload (a global rate limit's share is the limit over these) and
 * every IP each identity runs at (a certificate used anywhere else is used
 * off its workload). Keys sorted, for the same snapshots on every replica.
 */
export function podFacts(byIdentity: ReadonlyMap<string, readonly MeshPod[]>): {
  replicas: Map<string, number>;
  hosts: Map<string, string[]>;
} {
  const replicas = new Map<string, number>();
  const hosts = new Map<string, string[]>();
  for (const spiffeId of [...byIdentity.keys()].sort()) {
    const ips = new Set<string>();
    for (const pod of byIdentity.get(spiffeId)!) {
      for (const ip of pod.ips) ips.add(ip);
      if (pod.inboundPort === undefined) continue;
      const key = `${pod.namespace}/${pod.workload}`;
      replicas.set(key, (replicas.get(key) ?? 0) + 1);
    }
    hosts.set(spiffeId, [...ips].sort());
  }
  return { replicas, hosts };
}

/**
 * Keeps the snapshot registry equal to the cluster's mesh endpoints:
 * Service and EndpointSlice informers beside the pod index, recomputed on
 * any change of the three, once per burst of changes.
 */
export class ServiceDiscovery {
  readonly #services: ResourceInformer;
  readonly #slices: ResourceInformer;
  readonly #pods: PodIndex;
  readonly #closed = new AbortController();
  readonly #publish: (discovered: Discovered) => void;
  #started = false;
  #pending: NodeJS.Timeout | undefined;
  #unsubscribe: (() => void) | undefined;

  constructor(
    kubeConfig: KubeConfig,
    pods: PodIndex,
    logger: Logger,
    publish: (discovered: Discovered) => void,
  ) {
    this.#pods = pods;
    this.#publish = publish;
    const changed = () => this.#schedule();
    this.#services = new ResourceInformer(
      kubeConfig,
      SERVICES,
      logger,
      changed,
      this.#closed.signal,
    );
    this.#slices = new ResourceInformer(
      kubeConfig,
      ENDPOINT_SLICES,
      logger,
      changed,
      this.#closed.signal,
    );
  }

  /** Lists Services and EndpointSlices (the pod index is started by its owner), then publishes. */
  async start(): Promise<void> {
    await Promise.all([this.#services.start(), this.#slices.start()]);
    this.#started = true;
    this.#unsubscribe = this.#pods.onChange(() => this.#schedule());
    this.#update();
  }

  /** Events come in bursts (a rollout): one recomputation per burst, not one per event. */
  #schedule(): void {
    // Before both lists have succeeded, a partial view would publish services as gone.
    if (!this.#started || this.#pending) return;
    this.#pending = setTimeout(() => this.#update(), UPDATE_DELAY_MS);
    this.#pending.unref();
  }

  #update(): void {
    this.#pending = undefined;
    this.#publish({
      endpoints: discoveredEndpoints(
        this.#services.list(),
        this.#slices.list(),
        (namespace, name) => this.#pods.get(namespace, name),
      ),
      ...podFacts(this.#pods.liveByIdentity()),
    });
  }

  async close(): Promise<void> {
    this.#closed.abort();
    clearTimeout(this.#pending);
    this.#unsubscribe?.();
    await Promise.all([this.#services.stop(), this.#slices.stop()]);
  }
}
