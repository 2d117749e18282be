import type { KubeConfig, KubernetesObject } from '@kubernetes/client-node';
import { plainAddress } from '../../common/address.ts';
import type { Logger } from '../../common/log.ts';
import { formatSpiffeId } from '../../common/spiffe.ts';
import { PORTS, PROXY_CONTAINER, STATUS_ANNOTATION, workloadOf } from '../webhooks/injection.ts';
import { PODS, ResourceInformer } from './resource-informer.ts';

/** What the mesh needs of a pod: who it runs as, where, and whether its sidecar takes traffic. */
export interface MeshPod {
  readonly namespace: string;
  readonly name: string;
  readonly uid: string;
  readonly serviceAccount: string;
  readonly spiffeId: string;
  /** The workload its sidecar registers as (injection.ts's workloadOf). */
  readonly workload: string;
  readonly labels: Readonly<Record<string, string>>;
  readonly ip: string | undefined;
  /** Running or about to (not Succeeded or Failed): a terminating pod still drains. */
  readonly live: boolean;
  /** Injected by our webhook: its sidecar's inbound port, where peers send mesh traffic. */
  readonly inboundPort: number | undefined;
}

interface PodObject extends KubernetesObject {
  spec?: {
    serviceAccountName?: string;
    hostNetwork?: boolean;
    containers?: { name: string; ports?: { name?: string; containerPort: number }[] }[];
    initContainers?: { name: string; ports?: { name?: string; containerPort: number }[] }[];
  };
  status?: { phase?: string; podIP?: string };
}

/** The port the injected proxy container names `postern-inbound`, else the default. */
function inboundPortOf(pod: PodObject): number | undefined {
  if (pod.metadata?.annotations?.[STATUS_ANNOTATION] !== 'injected') return undefined;
  const proxy = [...(pod.spec?.initContainers ?? []), ...(pod.spec?.containers ?? [])].find(
    (c) => c.name === PROXY_CONTAINER,
  );
  if (!proxy) return undefined;
  return proxy.ports?.find((p) => p.name === 'postern-inbound')?.containerPort ?? PORTS.inbound;
}

/** A pod as the mesh sees it; undefined for what is not a usable pod object. */
export function meshPod(pod: PodObject, trustDomain: string): MeshPod | undefined {
  const { namespace, name, uid } = pod.metadata ?? {};
  if (!namespace || !name || !uid) return undefined;
  const serviceAccount = pod.spec?.serviceAccountName ?? 'default';
  const labels = Object.freeze({ ...(pod.metadata?.labels ?? {}) });
  const phase = pod.status?.phase;
  return Object.freeze({
    namespace,
    name,
    uid,
    serviceAccount,
    spiffeId: formatSpiffeId({ trustDomain, namespace, serviceAccount }),
    workload: workloadOf(labels, serviceAccount),
    labels,
    // A hostNetwork pod's IP is its node's, shared with every other such pod: it names no one.
    ip: pod.spec?.hostNetwork ? undefined : pod.status?.podIP || undefined,
    live: phase !== 'Succeeded' && phase !== 'Failed',
    inboundPort: inboundPortOf(pod),
  });
}

/**
 * Every pod of the cluster from a Pod informer, indexed by name and by IP:
 * which pod a ServiceAccount token is bound to, which pod a sidecar
 * connects from, and where each injected pod takes mesh traffic.
 */
export class PodIndex {
  readonly #informer: ResourceInformer;
  readonly #closed = new AbortController();
  readonly #trustDomain: string;
  readonly #listeners = new Set<() => void>();
  #byName = new Map<string, MeshPod>();
  #byIp = new Map<string, MeshPod>();
  #liveIdentities = new Set<string>();
  #stale = false;

  constructor(kubeConfig: KubeConfig, trustDomain: string, logger: Logger) {
    this.#trustDomain = trustDomain;
    this.#informer = new ResourceInformer(
      kubeConfig,
      PODS,
      logger,
      () => this.#changed(),
      this.#closed.signal,
    );
  }

  async start(): Promise<void> {
    await this.#informer.start();
    this.#changed();
  }

  /**
   * A pod event: the index is rebuilt when next read, not now, so that a
   * burst of events (a rollout) costs one rebuild per reader, not one per event.
   */
  #changed(): void {
    this.#stale = true;
    for (const listener of this.#listeners) listener();
  }

  /** Calls `listener` after each change of the pods; returns the unsubscribe. */
  onChange(listener: () => void): () => void {
    this.#listeners.add(listener);
    return () => this.#listeners.delete(listener);
  }

  #fresh(): void {
    if (!this.#stale) return;
    this.#stale = false;
    const byName = new Map<string, MeshPod>();
    const byIp = new Map<string, MeshPod>();
    const liveIdentities = new Set<string>();
    for (const object of this.#informer.list()) {
      const pod = meshPod(object as PodObject, this.#trustDomain);
      if (!pod) continue;
      byName.set(`${pod.namespace}/${pod.name}`, pod);
      if (!pod.live) continue;
      liveIdentities.add(`${pod.spiffeId} ${pod.workload}`);
      if (pod.ip) byIp.set(plainAddress(pod.ip), pod);
    }
    this.#byName = byName;
    this.#byIp = byIp;
    this.#liveIdentities = liveIdentities;
  }

  get(namespace: string, name: string): MeshPod | undefined {
    this.#fresh();
    return this.#byName.get(`${namespace}/${name}`);
  }

  /** The live pod with this IP, if any. */
  atAddress(ip: string): MeshPod | undefined {
    this.#fresh();
    return this.#byIp.get(plainAddress(ip));
  }

  /** Whether a live pod runs as `spiffeId` (and, when given, as `workload`). */
  hasLive(spiffeId: string, workload?: string): boolean {
    this.#fresh();
    if (workload !== undefined) return this.#liveIdentities.has(`${spiffeId} ${workload}`);
    for (const key of this.#liveIdentities) if (key.startsWith(`${spiffeId} `)) return true;
    return false;
  }

  async close(): Promise<void> {
    this.#closed.abort();
    await this.#informer.stop();
  }
}
