import { hostOfHostPort, isLoopbackAddress } from '../common/address.ts';
import type { HttpRoute } from '../common/policy/httproute-schema.ts';
import {
  compilePrincipals,
  type PrincipalMatcher,
  principalMatches,
} from '../common/policy/principals.ts';
import type { RoutePolicy } from '../common/policy/schema.ts';
import {
  type Block,
  formatLabels,
  hashSnapshotContent,
  type MeshDefault,
  type RegistryEntry,
  type Revocation,
  type Snapshot,
  type SnapshotAck,
  type UnconfirmedSidecar,
} from '../common/wire.ts';
import { WatchLimitError } from './api/errors.ts';

/**
 * A mesh endpoint the control plane learned from the platform rather than
 * from a registration (in a cluster: EndpointSlices and Pods, see
 * kubernetes/discovery.ts): what the registry carries, plus the pod's
 * workload and labels (which policies select it, so who may call it).
 */
export interface DiscoveredEndpoint {
  readonly entry: RegistryEntry;
  readonly workload: string;
  readonly namespace: string;
  readonly labels: Readonly<Record<string, string>>;
}

/** What discovery knows of a cluster (kubernetes/discovery.ts). */
export interface Discovered {
  readonly endpoints: readonly DiscoveredEndpoint[];
  /** Live injected pods per `namespace/workload`: the replicas a global rate limit is shared by. */
  readonly replicas: ReadonlyMap<string, number>;
  /** Every live pod's IPs per SPIFFE ID: where an identity may be used from. */
  readonly hosts: ReadonlyMap<string, readonly string[]>;
}

/** A sidecar holding a snapshot watch open: its registration and a way to push to it. */
export interface Subscriber {
  readonly workload: string;
  readonly namespace: string;
  /** From the credential the workload was bootstrapped with, never from the sidecar's word. */
  readonly labels: Readonly<Record<string, string>>;
  /** Advertised inbound address (host:port), or undefined for a workload that only calls out. */
  readonly address: string | undefined;
  readonly spiffeId: string;
  /**
   * A pod (in a cluster: discovery lists it, its registration adds
   * nothing), or a bootstrap token (a VM, a gateway outside the cluster:
   * only its registration puts it in the registry). Absent: a token.
   */
  readonly via?: 'bootstrap-token' | 'pod';
  /** notBefore of the certificate the watch was opened with (revocations are by issue time). */
  readonly certificateNotBeforeMs: number;
  send(snapshot: Snapshot): void;
  /** Ends the watch from the control plane's side (replaced, revoked); the stream's close then unsubscribes. */
  close(reason: string): void;
}

/** What `GET /v1/acks` shows per connected sidecar: its registration and what it last applied or rejected. */
export interface AckStatus {
  readonly workload: string;
  readonly namespace: string;
  readonly spiffeId: string;
  readonly address: string | undefined;
  readonly version: string;
  readonly hash: string;
  readonly status: SnapshotAck['status'];
  readonly reason?: string;
  /** The trust bundle (`trustBundleId`) the sidecar said it verifies peers with. */
  readonly trustBundle?: string;
  readonly at: string;
}

export interface SnapshotHubOptions {
  /**
   * Snapshot watches one workload identity (SPIFFE ID and workload) may hold at once (its replicas, each with
   * one). Past it a new watch is refused, so one stolen certificate cannot
   * hold the control plane's memory.
   */
  readonly maxWatchesPerIdentity?: number;
  /**
   * Fan-outs are at least this far apart: a burst of registrations (a
   * deployment scaling, the mesh reconnecting after a restart) reaches each
   * sidecar as one snapshot, not one per registration.
   */
  readonly minFanOutIntervalMs?: number;
  /** --redis: where sidecars count global rate limits (sent only to those whose policies have one). */
  readonly redisUrl?: string;
  /** What this mesh's keys in that Redis start with (see GlobalRateLimitConfig). */
  readonly redisKeyPrefix?: string;
}

/** Whether `policy` applies to a workload: same namespace, and every matchLabels pair present. */
export function selects(
  policy: RoutePolicy,
  namespace: string,
  labels: Readonly<Record<string, string>>,
): boolean {
  if (policy.metadata.namespace !== namespace) return false;
  const wanted = policy.spec.selector?.matchLabels ?? {};
  return Object.entries(wanted).every(([key, value]) => labels[key] === value);
}

const NOBODY = compilePrincipals([]);
const ANYBODY = compilePrincipals(['*']);

/**
 * The callers a workload's policies could ever let through: the principals
 * of every allow entry, or anybody when some path admits callers by other
 * means (audit mode, an allow default, an entry conditioned only on a JWT or
 * a source address). Deny entries never widen it. Used to send each sidecar
 * only the registry entries it may need: an endpoint whose policies admit no
 * request from a caller is of no use to that caller, and knowing it would
 * only tell a compromised workload where to look.
 */
export function admittedCallers(
  selecting: readonly RoutePolicy[],
  meshDefault: MeshDefault,
): PrincipalMatcher {
  if (!selecting.length) return meshDefault === 'allow-authenticated' ? ANYBODY : NOBODY;
  const principals: string[] = [];
  for (const policy of selecting) {
    if (policy.spec.mode === 'audit' || policy.spec.defaultAction === 'allow') return ANYBODY;
    for (const route of policy.spec.routes) {
      for (const entry of route.allow ?? []) {
        if (!entry.principals) return ANYBODY;
        principals.push(...entry.principals);
      }
    }
  }
  return compilePrincipals(principals);
}

interface Registration {
  /** The ack this sidecar last sent over its watch, if any. */
  ack: AckStatus | undefined;
  /** Hash of the snapshot last sent, so unchanged content is not sent again. */
  sentHash: string | undefined;
}

interface Group {
  readonly policies: readonly RoutePolicy[];
  readonly callers: PrincipalMatcher;
}

interface Endpoint {
  readonly entry: RegistryEntry;
  readonly callers: PrincipalMatcher;
}

const identityKey = (s: Pick<Subscriber, 'spiffeId' | 'workload'>) => `${s.spiffeId} ${s.workload}`;
/** What an ack names its watch by: the caller's identity and the address the watch advertised. */
const ackKey = (s: Pick<Subscriber, 'spiffeId' | 'workload'>, address: string | undefined) =>
  `${identityKey(s)} ${address ?? ''}`;

/**
 * Where a replica runs, for replacement: its IP (a pod has one, so a second
 * watch from it is the same replica reconnecting, whatever port it names), or
 * on loopback the whole address (one machine runs many sidecars). Undefined
 * for a watch that advertises nothing.
 */
function placeKey(s: Subscriber): string | undefined {
  if (s.address === undefined) return undefined;
  const host = hostOfHostPort(s.address);
  return `${identityKey(s)} ${isLoopbackAddress(host) ? s.address : host}`;
}

/**
 * Holds the current policy set and the registry of live workloads, and pushes
 * each subscriber its own snapshot whenever what it would receive changes.
 * Versions are `<epoch>.<counter>`: the counter moves on every change of
 * policies or registry, the epoch on every control-plane start.
 *
 * Each subscriber receives the policies that select it and the registry
 * entries its identity may call (see `admittedCallers`). Changes are
 * coalesced: at most one fan-out per `minFanOutIntervalMs`, in which the
 * registry is built once and each distinct (namespace, labels, identity)
 * snapshot once, and a subscriber whose content did not change is sent
 * nothing.
 */
export class SnapshotHub {
  readonly #epoch: number;
  readonly #meshDefault: MeshDefault;
  readonly #maxWatchesPerIdentity: number;
  readonly #minFanOutIntervalMs: number;
  #counter = 0;
  /**
   * Candidate policies for a workload, indexed by namespace and then by one
   * `key=value` pair of each policy's selector ('' for a policy that selects
   * every workload of its namespace), so finding a group's policies does not
   * scan every policy of the mesh.
   */
  #policyIndex = new Map<string, Map<string, RoutePolicy[]>>();
  /** Each subscriber's group key, computed once (its labels never change). */
  readonly #groupKeys = new WeakMap<object, string>();
  /** Each policy's position in the set, so a group's policies keep the order they were given in. */
  #order = new Map<RoutePolicy, number>();
  /**
   * Per (namespace, labels) group: the policies selecting it and the callers
   * they admit. Kept until the policies change: registrations come and go far
   * more often, and recomputing these for every group on every fan-out made
   * fan-outs quadratic in workloads times policies.
   */
  readonly #groups = new Map<string, Group>();
  #revoked: readonly Revocation[] = [];
  #trustBundle: string | undefined;
  readonly #subscribers = new Map<Subscriber, Registration>();
  /** Watches per (SPIFFE ID, workload), for the per-identity bound. */
  readonly #perIdentity = new Map<string, number>();
  /**
   * Watches by what an ack names (identity, workload, address), in the order
   * they were opened: every sidecar acks every fan-out, and finding the
   * watch by scanning all of them made an edit's acks quadratic in sidecars.
   */
  readonly #byAckKey = new Map<string, Set<Subscriber>>();
  #endpoints: Endpoint[] | undefined;
  /** Registered sidecars per `namespace/workload`, built with #endpoints. */
  #replicas: Map<string, number> | undefined;
  #blocks: ReadonlyMap<string, readonly Block[]> = new Map();
  /** Set in a cluster: the registry then comes from discovery (setDiscovered). */
  #discovered: Discovered | undefined;
  #discoveredKey: string | undefined;
  #httpRoutes: readonly HttpRoute[] = [];
  /** Registered pod addresses per SPIFFE ID, built with #endpoints. */
  #hosts: Map<string, string[]> | undefined;
  readonly #redisUrl: string | undefined;
  readonly #redisKeyPrefix: string | undefined;
  #flushTimer: NodeJS.Timeout | undefined;
  #lastFanOut = Number.NEGATIVE_INFINITY;

  constructor(epoch: number, meshDefault: MeshDefault, options: SnapshotHubOptions = {}) {
    this.#epoch = epoch;
    this.#meshDefault = meshDefault;
    this.#maxWatchesPerIdentity = options.maxWatchesPerIdentity ?? 100;
    this.#minFanOutIntervalMs = options.minFanOutIntervalMs ?? 100;
    this.#redisUrl = options.redisUrl;
    this.#redisKeyPrefix = options.redisKeyPrefix;
  }

  get version(): string {
    return `${this.#epoch}.${this.#counter}`;
  }

  setPolicies(policies: readonly RoutePolicy[], httpRoutes: readonly HttpRoute[] = []): void {
    this.#httpRoutes = httpRoutes;
    this.#policyIndex = new Map();
    this.#order = new Map(policies.map((policy, i) => [policy, i]));
    for (const policy of policies) {
      // Validated policies carry their namespace (defaulted as kubectl does).
      const namespace = policy.metadata.namespace ?? 'default';
      const byPair = this.#policyIndex.get(namespace) ?? new Map<string, RoutePolicy[]>();
      this.#policyIndex.set(namespace, byPair);
      const [first] = Object.entries(policy.spec.selector?.matchLabels ?? {});
      const pair = first ? `${first[0]}=${first[1]}` : '';
      byPair.set(pair, [...(byPair.get(pair) ?? []), policy]);
    }
    this.#groups.clear();
    this.#changed();
  }

  /** The revocations every sidecar enforces on its callers (the same for all). */
  setRevocations(revoked: readonly Revocation[]): void {
    if (JSON.stringify(revoked) === JSON.stringify(this.#revoked)) return;
    this.#revoked = revoked;
    this.#changed();
  }

  /** Callers blocked after exfiltration alerts, by `namespace/workload`; each workload's snapshot carries its own. */
  setBlocks(blocks: ReadonlyMap<string, readonly Block[]>): void {
    this.#blocks = blocks;
    this.#changed();
  }

  /**
   * From now on the registry is what discovery found, plus the
   * registrations of workloads bootstrapped by token: in a cluster every
   * replica of the control plane sees the same Kubernetes objects, so each
   * serves the same snapshots whichever replica a sidecar watches, where
   * registrations are only the watches this replica holds (so token-bound
   * workloads are known to the replica they watch, as outside a cluster).
   */
  setDiscovered(discovered: Discovered): void {
    // Pod status changes all the time (restarts, probes); most change nothing here.
    const key = JSON.stringify([
      discovered.endpoints.map((e) => [e.entry, e.workload, e.labels]),
      [...discovered.replicas],
      [...discovered.hosts],
    ]);
    if (key === this.#discoveredKey) return;
    this.#discoveredKey = key;
    this.#discovered = discovered;
    this.#changed();
  }

  /** The roots every sidecar trusts (the same for all); a root rotation changes them. */
  setTrustBundle(bundlePem: string): void {
    if (bundlePem === this.#trustBundle) return;
    this.#trustBundle = bundlePem;
    this.#changed();
  }

  /**
   * Registers a subscriber and sends it its current snapshot at once;
   * returns the unsubscribe. A watch from the same identity, workload and
   * address as an existing one replaces it (a sidecar reconnecting after a
   * cut, a restarted replica), so stale streams do not pile up; a watch past
   * the identity's bound is refused with WatchLimitError.
   */
  subscribe(subscriber: Subscriber): () => void {
    const replaces = placeKey(subscriber);
    if (replaces !== undefined) {
      for (const existing of this.#subscribers.keys()) {
        if (placeKey(existing) === replaces) {
          this.#remove(existing);
          existing.close('replaced by a newer watch from the same workload and address');
        }
      }
    }
    const key = identityKey(subscriber);
    const held = this.#perIdentity.get(key) ?? 0;
    if (held >= this.#maxWatchesPerIdentity) {
      throw new WatchLimitError(
        `workload ${subscriber.workload} as ${subscriber.spiffeId} already holds ${held} snapshot watches, the most one workload identity may hold (--max-watches-per-identity)`,
      );
    }
    this.#perIdentity.set(key, held + 1);
    this.#subscribers.set(subscriber, { ack: undefined, sentHash: undefined });
    const byAck = ackKey(subscriber, subscriber.address);
    this.#byAckKey.set(byAck, (this.#byAckKey.get(byAck) ?? new Set()).add(subscriber));
    if (subscriber.address) this.#changed();
    this.#push(subscriber, this.#snapshotFor(subscriber));
    return () => {
      this.#remove(subscriber);
    };
  }

  /** Forgets a subscriber; false when it was already gone (replaced, closed). */
  #remove(subscriber: Subscriber): boolean {
    if (!this.#subscribers.delete(subscriber)) return false;
    const key = identityKey(subscriber);
    const held = (this.#perIdentity.get(key) ?? 1) - 1;
    if (held) this.#perIdentity.set(key, held);
    else this.#perIdentity.delete(key);
    const byAck = ackKey(subscriber, subscriber.address);
    const watches = this.#byAckKey.get(byAck);
    watches?.delete(subscriber);
    if (!watches?.size) this.#byAckKey.delete(byAck);
    if (subscriber.address) this.#changed();
    return true;
  }

  /**
   * Ends every watch `shouldEnd` picks (an identity no longer bound to its
   * workload, a certificate revoked): the stream closes and the registration
   * leaves the registry at once. Returns how many were ended.
   */
  endWhere(shouldEnd: (subscriber: Subscriber) => boolean): number {
    let ended = 0;
    for (const subscriber of [...this.#subscribers.keys()]) {
      if (!shouldEnd(subscriber)) continue;
      this.#remove(subscriber);
      subscriber.close('the workload identity was revoked');
      ended++;
    }
    return ended;
  }

  /**
   * Records an ack against the open watch it belongs to: same identity,
   * workload and advertised address. Returns false when there is no such
   * watch, so acks are bounded by the watches and die with them.
   */
  recordAck(
    caller: { spiffeId: string; workload: string; namespace: string },
    ack: Pick<SnapshotAck, 'version' | 'hash' | 'status' | 'reason' | 'address' | 'trustBundle'>,
    at: Date,
  ): boolean {
    const subscriber = this.#byAckKey
      .get(ackKey(caller, ack.address || undefined))
      ?.values()
      .next().value;
    const registration = subscriber && this.#subscribers.get(subscriber);
    if (!subscriber || !registration) return false;
    registration.ack = {
      workload: subscriber.workload,
      namespace: subscriber.namespace,
      spiffeId: subscriber.spiffeId,
      address: subscriber.address,
      version: ack.version,
      hash: ack.hash,
      status: ack.status,
      ...(ack.reason === undefined ? {} : { reason: ack.reason }),
      ...(ack.trustBundle === undefined ? {} : { trustBundle: ack.trustBundle }),
      at: at.toISOString(),
    };
    return true;
  }

  get acks(): readonly AckStatus[] {
    const acks: AckStatus[] = [];
    for (const { ack } of this.#subscribers.values()) if (ack) acks.push(ack);
    return acks;
  }

  /**
   * The open watches whose sidecar has not said it trusts the bundle
   * `bundleId` names: its last ack named another one, or it has not acked
   * yet. A root rotation waits for this to be empty before the new root signs.
   */
  unconfirmed(bundleId: string): UnconfirmedSidecar[] {
    const waiting: UnconfirmedSidecar[] = [];
    for (const [subscriber, { ack }] of this.#subscribers) {
      if (ack?.trustBundle === bundleId) continue;
      waiting.push({
        workload: subscriber.workload,
        namespace: subscriber.namespace,
        spiffeId: subscriber.spiffeId,
        ...(subscriber.address === undefined ? {} : { address: subscriber.address }),
        ...(ack?.trustBundle === undefined ? {} : { trustBundle: ack.trustBundle }),
      });
    }
    return waiting;
  }

  /** Whether a workload of this name holds a snapshot watch in `namespace` (a gateway an HTTPRoute names, say). */
  hasWorkload(namespace: string, workload: string): boolean {
    for (const subscriber of this.#subscribers.keys())
      if (subscriber.workload === workload && subscriber.namespace === namespace) return true;
    return false;
  }

  /** The pod addresses (hosts, without ports) where sidecars of `spiffeId` are registered. */
  addressesOf(spiffeId: string): readonly string[] | undefined {
    this.#registry();
    return this.#hosts!.get(spiffeId);
  }

  /** Every endpoint (discovered, and registered) with the callers its policies admit; rebuilt after each change. */
  #registry(): readonly Endpoint[] {
    if (!this.#endpoints) {
      const endpoints: Endpoint[] = [];
      const replicas = new Map(this.#discovered?.replicas ?? []);
      const hosts = new Map<string, string[]>(
        [...(this.#discovered?.hosts ?? [])].map(([id, list]) => [id, [...list]]),
      );
      for (const endpoint of this.#discovered?.endpoints ?? [])
        endpoints.push({ entry: endpoint.entry, callers: this.#group(endpoint).callers });
      for (const sub of this.#subscribers.keys()) {
        // In a cluster a pod's registration adds nothing: discovery has it.
        if (!sub.address || (this.#discovered && sub.via === 'pod')) continue;
        const entry = {
          service: sub.workload,
          namespace: sub.namespace,
          address: sub.address,
          spiffeId: sub.spiffeId,
        };
        endpoints.push({ entry, callers: this.#group(sub).callers });
        const key = `${sub.namespace}/${sub.workload}`;
        replicas.set(key, (replicas.get(key) ?? 0) + 1);
        const host = hostOfHostPort(sub.address);
        const list = hosts.get(sub.spiffeId) ?? [];
        if (!list.includes(host)) list.push(host);
        hosts.set(sub.spiffeId, list);
      }
      const order = (e: Endpoint) => `${e.entry.namespace}/${e.entry.service} ${e.entry.address}`;
      this.#endpoints = endpoints.sort((a, b) =>
        order(a) < order(b) ? -1 : order(a) > order(b) ? 1 : 0,
      );
      this.#replicas = replicas;
      this.#hosts = hosts;
    }
    return this.#endpoints;
  }

  /**
   * What a sidecar needs for its policies' global rate limits: only sent
   * when it has one, so that replicas coming and going do not re-send every
   * other workload its snapshot.
   */
  #rateLimitFor(subscriber: Subscriber, policies: readonly RoutePolicy[]) {
    const global = policies.some(
      (policy) =>
        policy.spec.rateLimit?.scope === 'global' ||
        policy.spec.routes.some((route) => route.rateLimit?.scope === 'global'),
    );
    if (!global) return {};
    this.#registry();
    const replicas = this.#replicas!.get(`${subscriber.namespace}/${subscriber.workload}`) ?? 1;
    return {
      rateLimit: {
        ...(this.#redisUrl ? { redis: this.#redisUrl } : {}),
        replicas,
        ...(this.#redisUrl && this.#redisKeyPrefix ? { keyPrefix: this.#redisKeyPrefix } : {}),
      },
    };
  }

  #group(workload: Pick<Subscriber, 'namespace' | 'labels'>): Group {
    let key = this.#groupKeys.get(workload);
    if (key === undefined) {
      key = groupKey(workload);
      this.#groupKeys.set(workload, key);
    }
    let group = this.#groups.get(key);
    if (!group) {
      const policies = this.#candidates(workload).filter((policy) =>
        selects(policy, workload.namespace, workload.labels),
      );
      group = { policies, callers: admittedCallers(policies, this.#meshDefault) };
      this.#groups.set(key, group);
    }
    return group;
  }

  /** The policies that could select `workload`, in the order they were given. */
  #candidates(workload: Pick<Subscriber, 'namespace' | 'labels'>): RoutePolicy[] {
    const byPair = this.#policyIndex.get(workload.namespace);
    if (!byPair) return [];
    const found = new Set<RoutePolicy>(byPair.get('') ?? []);
    for (const [key, value] of Object.entries(workload.labels)) {
      for (const policy of byPair.get(`${key}=${value}`) ?? []) found.add(policy);
    }
    return [...found].sort((a, b) => this.#order.get(a)! - this.#order.get(b)!);
  }

  /**
   * The HTTPRoutes whose parentRefs name this workload: a gateway's routes,
   * absent for any other workload. Only routes of the gateway's own
   * namespace attach (the Gateway API's default, allowedRoutes Same): a
   * team cannot put a route on another namespace's gateway, where it could
   * win a host and path by precedence and receive that traffic.
   */
  #httpRoutesFor(subscriber: Subscriber): { httpRoutes?: readonly HttpRoute[] } {
    const attached = this.#httpRoutes.filter(
      (route) =>
        (route.metadata.namespace ?? 'default') === subscriber.namespace &&
        route.spec.parentRefs.some(
          (ref) =>
            ref.name === subscriber.workload &&
            (ref.namespace ?? route.metadata.namespace ?? 'default') === subscriber.namespace,
        ),
    );
    return attached.length ? { httpRoutes: attached } : {};
  }

  #blockedFor(subscriber: Subscriber): { blocked?: readonly Block[] } {
    const blocked = this.#blocks.get(`${subscriber.namespace}/${subscriber.workload}`);
    return blocked?.length ? { blocked } : {};
  }

  /** The snapshot a subscriber would receive now. */
  #snapshotFor(subscriber: Subscriber): Snapshot {
    const policies = this.#group(subscriber).policies;
    const content = {
      meshDefault: this.#meshDefault,
      policies,
      registry: this.#registry()
        .filter((endpoint) => principalMatches(endpoint.callers, subscriber.spiffeId))
        .map((endpoint) => endpoint.entry),
      revoked: this.#revoked,
      ...(this.#trustBundle === undefined ? {} : { trustBundle: this.#trustBundle }),
      ...this.#rateLimitFor(subscriber, policies),
      ...this.#blockedFor(subscriber),
      ...this.#httpRoutesFor(subscriber),
    };
    return { version: this.version, hash: hashSnapshotContent(content), ...content };
  }

  #changed(): void {
    this.#counter++;
    this.#endpoints = undefined;
    this.#replicas = undefined;
    this.#hosts = undefined;
    if (this.#flushTimer) return;
    const wait = Math.max(0, this.#lastFanOut + this.#minFanOutIntervalMs - performance.now());
    this.#flushTimer = setTimeout(() => this.#fanOut(), wait);
    // A pending fan-out must not keep a stopping process alive.
    this.#flushTimer.unref();
  }

  #fanOut(): void {
    this.#flushTimer = undefined;
    this.#lastFanOut = performance.now();
    const built = new Map<string, Snapshot>();
    for (const subscriber of [...this.#subscribers.keys()]) {
      const key = `${groupKey(subscriber)}|${subscriber.spiffeId}|${subscriber.workload}`;
      let snapshot = built.get(key);
      if (!snapshot) {
        snapshot = this.#snapshotFor(subscriber);
        built.set(key, snapshot);
      }
      this.#push(subscriber, snapshot);
    }
  }

  #push(subscriber: Subscriber, snapshot: Snapshot): void {
    const registration = this.#subscribers.get(subscriber);
    if (!registration || registration.sentHash === snapshot.hash) return;
    registration.sentHash = snapshot.hash;
    subscriber.send(snapshot);
  }

  close(): void {
    clearTimeout(this.#flushTimer);
  }
}

/** Subscribers with the same namespace and labels are selected by the same policies. */
function groupKey(subscriber: Pick<Subscriber, 'namespace' | 'labels'>): string {
  return `${subscriber.namespace}|${formatLabels(Object.fromEntries(Object.entries(subscriber.labels).sort()))}`;
}
