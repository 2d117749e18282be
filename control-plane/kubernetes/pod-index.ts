import { CoreV1Api, type KubeConfig, type KubernetesObject } from '@kubernetes/client-node';
import { isLoopbackAddress, plainAddress } from '../../common/address.ts';
import { UnavailableError } from '../../common/errors.ts';
import type { Logger } from '../../common/log.ts';
import { formatSpiffeId } from '../../common/spiffe.ts';
import {
  PORTS,
  PROXY_CONTAINER,
  STATUS_ANNOTATION,
  WORKLOAD_ANNOTATION,
  workloadOf,
} from '../webhooks/injection.ts';
import { PODS, ResourceInformer } from './resource-informer.ts';

/** What the mesh needs of a pod: who it runs as, where, and whether its sidecar takes traffic. */
export interface MeshPod {
  readonly namespace: string;
  readonly name: string;
  readonly uid: string;
  readonly serviceAccount: string;
  readonly spiffeId: string;
  /** The workload its sidecar registers as (fixed at injection, see WORKLOAD_ANNOTATION). */
  readonly workload: string;
  readonly labels: Readonly<Record<string, string>>;
  /** Its IPs (both families on a dual-stack pod); none for a hostNetwork pod, whose IP is its node's. */
  readonly ips: readonly string[];
  /** Running or about to (not Succeeded or Failed): a terminating pod still drains. */
  readonly live: boolean;
  /** Being deleted (its IP may already belong to another pod). */
  readonly terminating: boolean;
  /** Injected by our webhook: its sidecar's inbound port, where peers send mesh traffic. */
  readonly inboundPort: number | undefined;
}

type Container = { name: string; ports?: { name?: string; containerPort: number }[] };

interface PodObject extends KubernetesObject {
  spec?: {
    serviceAccountName?: string;
    hostNetwork?: boolean;
    containers?: Container[];
    initContainers?: Container[];
  };
  status?: { phase?: string; podIP?: string; podIPs?: { ip: string }[] };
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

function ipsOf(pod: PodObject): string[] {
  if (pod.spec?.hostNetwork) return [];
  const ips = pod.status?.podIPs?.map((entry) => entry.ip) ?? [];
  if (pod.status?.podIP && !ips.includes(pod.status.podIP)) ips.unshift(pod.status.podIP);
  return ips.filter(Boolean).map(plainAddress);
}

/**
 * Whether a connection from `address` comes from `pod`: one of its IPs. On
 * loopback (a cluster stood in for on one machine, where every connection
 * comes from 127.0.0.1) a pod whose own IP is a loopback address counts, as
 * `mayAdvertise` lets one loopback address stand for another.
 */
export function comesFrom(pod: MeshPod, address: string): boolean {
  const from = plainAddress(address);
  return pod.ips.includes(from) || (isLoopbackAddress(from) && pod.ips.some(isLoopbackAddress));
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
    workload:
      pod.metadata?.annotations?.[WORKLOAD_ANNOTATION] ?? workloadOf(labels, serviceAccount),
    labels,
    ips: Object.freeze(ipsOf(pod)),
    live: phase !== 'Succeeded' && phase !== 'Failed',
    terminating: Boolean(pod.metadata?.deletionTimestamp),
    inboundPort: inboundPortOf(pod),
  });
}

/**
 * Every pod of the cluster from a Pod informer, indexed by name, by IP and
 * by identity: which pod a ServiceAccount token is bound to, which pod a
 * sidecar connects from, and where each injected pod takes mesh traffic.
 * The indexes are rebuilt when next read after a change, not on every
 * event, so a burst of events (a rollout) costs one rebuild per reader.
 */
export class PodIndex {
  readonly #informer: ResourceInformer;
  readonly #core: CoreV1Api;
  readonly #closed = new AbortController();
  readonly #trustDomain: string;
  readonly #listeners = new Set<() => void>();
  #byName = new Map<string, MeshPod>();
  /** Live pods by IP: usually one, but a terminating pod may still hold the IP a new one got. */
  #byIp = new Map<string, MeshPod[]>();
  /** Live pods by SPIFFE ID. */
  #byIdentity = new Map<string, MeshPod[]>();
  #stale = false;

  constructor(kubeConfig: KubeConfig, trustDomain: string, logger: Logger) {
    this.#trustDomain = trustDomain;
    this.#core = kubeConfig.makeApiClient(CoreV1Api);
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

  /** Calls `listener` after each change of the pods; returns the unsubscribe. */
  onChange(listener: () => void): () => void {
    this.#listeners.add(listener);
    return () => this.#listeners.delete(listener);
  }

  #changed(): void {
    this.#stale = true;
    for (const listener of this.#listeners) listener();
  }

  #fresh(): void {
    if (!this.#stale) return;
    this.#stale = false;
    const byName = new Map<string, MeshPod>();
    const byIp = new Map<string, MeshPod[]>();
    const byIdentity = new Map<string, MeshPod[]>();
    const add = (index: Map<string, MeshPod[]>, key: string, pod: MeshPod) => {
      const list = index.get(key);
      if (list) list.push(pod);
      else index.set(key, [pod]);
    };
    for (const object of this.#informer.list()) {
      const pod = meshPod(object as PodObject, this.#trustDomain);
      if (!pod) continue;
      byName.set(`${pod.namespace}/${pod.name}`, pod);
      if (!pod.live) continue;
      add(byIdentity, pod.spiffeId, pod);
      for (const ip of pod.ips) add(byIp, ip, pod);
    }
    this.#byName = byName;
    this.#byIp = byIp;
    this.#byIdentity = byIdentity;
  }

  get(namespace: string, name: string): MeshPod | undefined {
    this.#fresh();
    return this.#byName.get(`${namespace}/${name}`);
  }

  /**
   * The pod as the API server has it now, for when the informer does not
   * (yet) agree with a TokenReview: undefined when it does not exist.
   * Throws UnavailableError when the API cannot answer.
   */
  async fetch(namespace: string, name: string): Promise<MeshPod | undefined> {
    try {
      return meshPod(
        (await this.#core.readNamespacedPod({ namespace, name })) as PodObject,
        this.#trustDomain,
      );
    } catch (error) {
      if ((error as { code?: number }).code === 404) return undefined;
      throw new UnavailableError(
        `the Kubernetes API could not say whether pod ${namespace}/${name} exists: ${(error as Error).message}`,
      );
    }
  }

  /**
   * The live pod of `spiffeId` (and `workload`, when given) that a
   * connection from `address` comes from (see comesFrom); one not being
   * deleted first.
   */
  liveAt(address: string, spiffeId: string, workload?: string): MeshPod | undefined {
    this.#fresh();
    const from = plainAddress(address);
    const candidates = isLoopbackAddress(from)
      ? (this.#byIdentity.get(spiffeId) ?? [])
      : (this.#byIp.get(from) ?? []);
    const matching = candidates.filter(
      (pod) =>
        pod.spiffeId === spiffeId &&
        (workload === undefined || pod.workload === workload) &&
        comesFrom(pod, from),
    );
    return matching.find((pod) => !pod.terminating) ?? matching[0];
  }

  /** Whether a live pod runs as `spiffeId` (and, when given, as `workload`). */
  hasLive(spiffeId: string, workload?: string): boolean {
    this.#fresh();
    const pods = this.#byIdentity.get(spiffeId) ?? [];
    return workload === undefined ? pods.length > 0 : pods.some((pod) => pod.workload === workload);
  }

  /** Every live pod, by SPIFFE ID. */
  liveByIdentity(): ReadonlyMap<string, readonly MeshPod[]> {
    this.#fresh();
    return this.#byIdentity;
  }

  async close(): Promise<void> {
    this.#closed.abort();
    await this.#informer.stop();
  }
}
