import type { RoutePolicy } from '../common/policy/schema.ts';
import {
  formatLabels,
  hashSnapshotContent,
  type MeshDefault,
  type RegistryEntry,
  type Snapshot,
  type SnapshotAck,
} from '../common/wire.ts';

/** A sidecar holding a snapshot watch open: its registration and a way to push to it. */
export interface Subscriber {
  readonly workload: string;
  readonly namespace: string;
  readonly labels: Readonly<Record<string, string>>;
  /** Advertised inbound address (host:port), or undefined for a workload that only calls out. */
  readonly address: string | undefined;
  readonly spiffeId: string;
  send(snapshot: Snapshot): void;
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

/**
 * Holds the current policy set and the registry of live workloads, and pushes
 * each subscriber its own snapshot whenever what it would receive changes.
 * Versions are `<epoch>.<counter>`: the counter moves on every change of
 * policies or registry, the epoch on every control-plane start.
 *
 * Changes are coalesced: a burst (a control-plane restart brings every
 * sidecar back within moments, each registering) costs one fan-out, in which
 * the registry is built once and each distinct (namespace, labels) snapshot
 * once, not once per subscriber per change.
 */
export class SnapshotHub {
  readonly #epoch: number;
  readonly #meshDefault: MeshDefault;
  #counter = 0;
  #policies: readonly RoutePolicy[] = [];
  readonly #subscribers = new Map<Subscriber, string | undefined>(); // → hash last sent
  readonly #acks = new Map<string, SnapshotAck & { spiffeId: string; at: string }>();
  #registry: RegistryEntry[] | undefined;
  #flushScheduled = false;

  constructor(epoch: number, meshDefault: MeshDefault) {
    this.#epoch = epoch;
    this.#meshDefault = meshDefault;
  }

  get version(): string {
    return `${this.#epoch}.${this.#counter}`;
  }

  setPolicies(policies: readonly RoutePolicy[]): void {
    this.#policies = policies;
    this.#changed();
  }

  /** Registers a subscriber and sends it the current snapshot at once. Returns the unsubscribe. */
  subscribe(subscriber: Subscriber): () => void {
    this.#subscribers.set(subscriber, undefined);
    if (subscriber.address) this.#changed();
    this.#push(subscriber, this.snapshotFor(subscriber.namespace, subscriber.labels));
    return () => {
      this.#subscribers.delete(subscriber);
      if (subscriber.address) this.#changed();
    };
  }

  recordAck(ack: SnapshotAck, spiffeId: string): void {
    this.#acks.set(`${spiffeId} ${ack.workload} ${ack.address ?? ''}`, {
      ...ack,
      spiffeId,
      at: new Date().toISOString(),
    });
  }

  get acks(): ReadonlyArray<SnapshotAck & { spiffeId: string; at: string }> {
    return [...this.#acks.values()];
  }

  registry(): readonly RegistryEntry[] {
    if (!this.#registry) {
      const entries: RegistryEntry[] = [];
      for (const sub of this.#subscribers.keys()) {
        if (sub.address) {
          entries.push({
            service: sub.workload,
            namespace: sub.namespace,
            address: sub.address,
            spiffeId: sub.spiffeId,
          });
        }
      }
      this.#registry = entries.sort((a, b) =>
        (a.service + a.address).localeCompare(b.service + b.address),
      );
    }
    return this.#registry;
  }

  snapshotFor(namespace: string, labels: Readonly<Record<string, string>>): Snapshot {
    const content = {
      meshDefault: this.#meshDefault,
      policies: this.#policies.filter((policy) => selects(policy, namespace, labels)),
      registry: this.registry(),
    };
    return { version: this.version, hash: hashSnapshotContent(content), ...content };
  }

  #changed(): void {
    this.#counter++;
    this.#registry = undefined;
    if (this.#flushScheduled) return;
    this.#flushScheduled = true;
    setImmediate(() => {
      this.#flushScheduled = false;
      const built = new Map<string, Snapshot>();
      for (const subscriber of this.#subscribers.keys()) {
        const key = `${subscriber.namespace}|${formatLabels(Object.fromEntries(Object.entries(subscriber.labels).sort()))}`;
        let snapshot = built.get(key);
        if (!snapshot) {
          snapshot = this.snapshotFor(subscriber.namespace, subscriber.labels);
          built.set(key, snapshot);
        }
        this.#push(subscriber, snapshot);
      }
    });
  }

  #push(subscriber: Subscriber, snapshot: Snapshot): void {
    if (this.#subscribers.get(subscriber) === snapshot.hash) return;
    this.#subscribers.set(subscriber, snapshot.hash);
    subscriber.send(snapshot);
  }
}
