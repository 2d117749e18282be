/**
 * The simulator's N sidecars and what is measured over them. Every count is
 * kept up to date as events arrive, so waiting for "all N" costs nothing per
 * event however large N is.
 */
import { join } from 'node:path';
import type { Logger } from '../../common/log.ts';
import type { Snapshot, SnapshotAck } from '../../common/wire.ts';
import { WorkloadCertificate } from '../../sidecar/identity/workload-certificate.ts';
import { type ApplyResult, SnapshotState } from '../../sidecar/policy/snapshot-state.ts';
import {
  addressOf,
  NAMESPACE,
  REPLICAS,
  registrySize,
  serviceName,
  serviceOf,
  servicesFor,
  spiffeIdOf,
} from './mesh.ts';
import { now, type Reply, type SimulatorConfig, type Traffic } from './protocol.ts';
import { type SidecarEvents, SimulatedSidecar } from './simulated-sidecar.ts';

type Mutable<T> = { -readonly [K in keyof T]: T[K] };

/** What a failed ack's error says, in the words of the report (first match wins). */
const ACK_FAILURES: readonly [string, RegExp][] = [
  ['TLS handshake cut by the control plane', /before secure TLS connection was established/],
  ['no answer within 10 s', /aborted due to timeout/],
  ['connection closed or reset', /other side closed|ECONNRESET|EPIPE/],
  ['refused by the control plane', /answered \d+/],
];
const reasonOf = (error: unknown) =>
  ACK_FAILURES.find(([, pattern]) => pattern.test((error as Error)?.message ?? ''))?.[0] ?? 'other';

const copyOf = (traffic: Traffic): Traffic => ({
  ...traffic,
  ackFailureReasons: { ...traffic.ackFailureReasons },
});

const since = (start: Traffic, end: Traffic): Traffic => ({
  snapshots: end.snapshots - start.snapshots,
  bytes: end.bytes - start.bytes,
  reconnects: end.reconnects - start.reconnects,
  watchFailures: end.watchFailures - start.watchFailures,
  ackFailures: end.ackFailures - start.ackFailures,
  ackFailureReasons: Object.fromEntries(
    Object.entries(end.ackFailureReasons)
      .map(([reason, count]) => [reason, count - (start.ackFailureReasons[reason] ?? 0)] as const)
      .filter(([, count]) => count > 0),
  ),
});

/** How one sidecar's ack of the edit ended. */
interface Settled {
  readonly hash: string;
  readonly status: SnapshotAck['status'] | 'failed';
  readonly receivedAt: number;
  readonly ackedAt: number;
}

/** The edit being waited for: what each sidecar held before the save, and how its ack of the next snapshot ended. */
interface EditMark {
  readonly before: readonly (string | undefined)[];
  readonly settled: (Settled | undefined)[];
  count: number;
  readonly traffic: Traffic;
}

export class Fleet {
  readonly #config: SimulatorConfig;
  readonly #logger: Logger;
  readonly #sidecars: SimulatedSidecar[] = [];
  readonly #expectedRegistry: number;
  readonly #traffic: Mutable<Traffic> & { ackFailureReasons: Record<string, number> } = {
    snapshots: 0,
    bytes: 0,
    reconnects: 0,
    watchFailures: 0,
    ackFailures: 0,
    ackFailureReasons: {},
  };
  /** Watches opened per sidecar: more than one is a reconnect. */
  readonly #opens: number[];
  readonly #hasSnapshot: boolean[];
  /** Sidecars that have received a snapshot. */
  #opened = 0;
  readonly #converged: boolean[];
  /** Sidecars whose last snapshot holds their whole registry and passed validation. */
  #convergedCount = 0;
  #mark: EditMark | undefined;
  /**
   * Validation results by snapshot hash. A real sidecar validates and
   * compiles every snapshot it receives; N of them on one simulator core
   * would make the simulator the bottleneck, so each distinct content is
   * checked once, by the sidecar's own SnapshotState, and its verdict
   * reused (the control plane builds one snapshot per service and identity).
   */
  readonly #verdicts = new Map<string, ApplyResult>();
  readonly #waiters = new Set<() => void>();

  constructor(config: SimulatorConfig, caPem: string, logger: Logger) {
    this.#config = config;
    this.#logger = logger;
    this.#expectedRegistry = registrySize(servicesFor(config.sidecars));
    this.#opens = new Array(config.sidecars).fill(0);
    this.#hasSnapshot = new Array(config.sidecars).fill(false);
    this.#converged = new Array(config.sidecars).fill(false);
    const events = this.#events();
    for (let index = 0; index < config.sidecars; index++) {
      const workload = serviceName(serviceOf(index));
      this.#sidecars.push(
        new SimulatedSidecar({
          index,
          registration: {
            workload,
            labels: { app: workload },
            address: addressOf(index, config.firstPort),
          },
          controlPlane: config.controlPlane,
          caPem,
          logger,
          events,
          apply: (snapshot) => this.#verdict(snapshot),
        }),
      );
    }
  }

  #verdict(snapshot: Snapshot): ApplyResult {
    let verdict = this.#verdicts.get(snapshot?.hash);
    if (!verdict) {
      verdict = new SnapshotState(NAMESPACE).apply(snapshot);
      this.#verdicts.set(snapshot?.hash, verdict);
    }
    return verdict;
  }

  #events(): SidecarEvents {
    const traffic = this.#traffic;
    return {
      watchOpened: (sidecar) => {
        if (this.#opens[sidecar.index]!++) traffic.reconnects++;
      },
      watchFailed: () => {
        traffic.watchFailures++;
      },
      bytes: (count) => {
        traffic.bytes += count;
      },
      received: (sidecar) => {
        traffic.snapshots++;
        const received = sidecar.received!;
        if (!this.#hasSnapshot[sidecar.index]) {
          this.#hasSnapshot[sidecar.index] = true;
          this.#opened++;
        }
        const converged = received.ok && received.registry === this.#expectedRegistry;
        if (converged !== this.#converged[sidecar.index]) {
          this.#converged[sidecar.index] = converged;
          this.#convergedCount += converged ? 1 : -1;
        }
        this.#notify();
      },
      acked: (sidecar, ack, at) => {
        const received = sidecar.received;
        this.#settle(sidecar, ack, {
          hash: ack.hash,
          status: ack.status,
          receivedAt: received?.hash === ack.hash ? received.at : Number.NaN,
          ackedAt: at,
        });
      },
      ackFailed: (sidecar, ack, error) => {
        traffic.ackFailures++;
        const reason = reasonOf(error);
        traffic.ackFailureReasons[reason] = (traffic.ackFailureReasons[reason] ?? 0) + 1;
        this.#settle(sidecar, ack, {
          hash: ack.hash,
          status: 'failed',
          receivedAt: Number.NaN,
          ackedAt: Number.NaN,
        });
      },
    };
  }

  /** The first ack of something new after the mark settles that sidecar's part of the edit. */
  #settle(sidecar: SimulatedSidecar, ack: SnapshotAck, settled: Settled): void {
    const mark = this.#mark;
    if (!mark || mark.settled[sidecar.index] || ack.hash === mark.before[sidecar.index]) return;
    mark.settled[sidecar.index] = settled;
    mark.count++;
    this.#notify();
  }

  #notify(): void {
    for (const waiter of [...this.#waiters]) waiter();
  }

  /** Resolves true once `done()` holds, or false at `deadline`. */
  #until(done: () => boolean, deadline: number): Promise<boolean> {
    if (done()) return Promise.resolve(true);
    return new Promise((resolve) => {
      const check = () => {
        if (!done()) return;
        clearTimeout(timer);
        this.#waiters.delete(check);
        resolve(true);
      };
      const timer = setTimeout(
        () => {
          this.#waiters.delete(check);
          resolve(false);
        },
        Math.max(0, deadline - now()),
      );
      this.#waiters.add(check);
    });
  }

  /**
   * One certificate per service identity, bought with the service's
   * bootstrap token through the real CSR endpoint, all services at once;
   * its replicas present the same SVID (each with its own connections).
   */
  async certificates(): Promise<Reply & { type: 'certificates' }> {
    const started = now();
    const services = servicesFor(this.#config.sidecars);
    await Promise.all(
      Array.from({ length: services }, async (_, service) => {
        const replicas = this.#sidecars.slice(service * REPLICAS, (service + 1) * REPLICAS);
        const others = (svid: Parameters<SimulatedSidecar['client']['useCertificate']>[0]) => {
          for (const replica of replicas.slice(1)) replica.client.useCertificate(svid);
        };
        const svid = await new WorkloadCertificate({
          client: replicas[0]!.client,
          spiffeId: spiffeIdOf(service),
          tokenFile: join(this.#config.tokensDir, `${serviceName(service)}.token`),
          logger: this.#logger,
          onRotated: others,
        }).obtain();
        if (!svid) throw new Error(`no certificate for ${serviceName(service)}`);
        others(svid);
      }),
    );
    return { type: 'certificates', count: services, ms: now() - started };
  }

  /** Opens every watch at once; waits until all have a snapshot, then until every registry is whole. */
  async connect(timeoutMs: number): Promise<Reply & { type: 'connected' }> {
    const started = now();
    const deadline = started + timeoutMs;
    const n = this.#config.sidecars;
    for (const sidecar of this.#sidecars) sidecar.start();
    const opened = await this.#until(() => this.#opened === n, deadline);
    const openedMs = opened ? now() - started : undefined;
    const converged = opened && (await this.#until(() => this.#convergedCount === n, deadline));
    return {
      type: 'connected',
      complete: converged,
      openedMs,
      convergedMs: converged ? now() - started : undefined,
      opened: this.#opened,
      converged: this.#convergedCount,
      traffic: copyOf(this.#traffic),
    };
  }

  mark(): void {
    this.#mark = {
      before: this.#sidecars.map((sidecar) => sidecar.received?.hash),
      settled: new Array(this.#sidecars.length).fill(undefined),
      count: 0,
      traffic: copyOf(this.#traffic),
    };
  }

  /** Waits until every sidecar's ack of something new since `mark()` has ended; times are from `savedAt`. */
  async awaitEdit(savedAt: number, timeoutMs: number): Promise<Reply & { type: 'edit' }> {
    const mark = this.#mark;
    if (!mark) throw new Error('await-edit without mark');
    const complete = await this.#until(
      () => mark.count === this.#sidecars.length,
      now() + timeoutMs,
    );
    this.#mark = undefined;
    const receivedMs: number[] = [];
    const ackedMs: number[] = [];
    const applied: Record<string, string> = {};
    let rejected = 0;
    for (const sidecar of this.#sidecars) {
      const settled = mark.settled[sidecar.index];
      if (settled?.status === 'rejected') rejected++;
      if (settled?.status !== 'applied') continue;
      receivedMs.push(settled.receivedAt - savedAt);
      ackedMs.push(settled.ackedAt - savedAt);
      applied[sidecar.address] = settled.hash;
    }
    return {
      type: 'edit',
      complete,
      receivedMs,
      ackedMs,
      applied,
      rejected,
      traffic: since(mark.traffic, this.#traffic),
    };
  }
}
