/**
 * One simulated sidecar: the real sidecar's control-plane path and nothing
 * else. It is built from the sidecar's own parts, so it connects, watches,
 * reconnects and acks exactly as a sidecar does: `ControlPlaneClient` (its
 * own undici Agent presenting the SVID, so the watch holds one mTLS
 * connection and acks open another) and `SnapshotWatch` (SSE parsing, the
 * ack body, backoff, no retry of a failed ack). Subclassing the client adds
 * only what is measured: the stream's bytes and each ack's answer.
 */

import type { Logger } from '../../common/log.ts';
import type { Snapshot, SnapshotAck } from '../../common/wire.ts';
import { ControlPlaneClient, type Registration } from '../../sidecar/control-plane-client.ts';
import type { ApplyResult } from '../../sidecar/policy/snapshot-state.ts';
import { SnapshotWatch } from '../../sidecar/policy/snapshot-watch.ts';
import { now } from './protocol.ts';

/** The snapshot a sidecar received last, and the verdict on it. */
export interface Received {
  readonly hash: string;
  readonly registry: number;
  readonly ok: boolean;
  readonly at: number;
}

/** What the fleet counts; called synchronously as things happen. */
export interface SidecarEvents {
  watchOpened(sidecar: SimulatedSidecar): void;
  watchFailed(sidecar: SimulatedSidecar): void;
  bytes(count: number): void;
  received(sidecar: SimulatedSidecar): void;
  /** The control plane answered this ack (at `at`). */
  acked(sidecar: SimulatedSidecar, ack: SnapshotAck, at: number): void;
  /** This ack failed (refused, or no answer within the client's deadline); the sidecar does not send it again. */
  ackFailed(sidecar: SimulatedSidecar, ack: SnapshotAck, error: unknown): void;
}

async function* metered(
  stream: AsyncIterable<Buffer>,
  count: (bytes: number) => void,
): AsyncIterable<Buffer> {
  for await (const chunk of stream) {
    count(chunk.length);
    yield chunk;
  }
}

/** The sidecar's client, reporting what passes through it. */
class MeteredClient extends ControlPlaneClient {
  readonly #sidecar: SimulatedSidecar;
  readonly #events: SidecarEvents;

  constructor(url: string, caPem: string, sidecar: SimulatedSidecar, events: SidecarEvents) {
    super(url, caPem);
    this.#sidecar = sidecar;
    this.#events = events;
  }

  override async watchSnapshots(
    registration: Registration,
    signal: AbortSignal,
  ): Promise<AsyncIterable<Buffer>> {
    let stream: AsyncIterable<Buffer>;
    try {
      stream = await super.watchSnapshots(registration, signal);
    } catch (error) {
      this.#events.watchFailed(this.#sidecar);
      throw error;
    }
    this.#events.watchOpened(this.#sidecar);
    return metered(stream, (bytes) => this.#events.bytes(bytes));
  }

  override async ack(ack: SnapshotAck, signal?: AbortSignal): Promise<void> {
    try {
      await super.ack(ack, signal);
    } catch (error) {
      this.#events.ackFailed(this.#sidecar, ack, error);
      throw error;
    }
    this.#events.acked(this.#sidecar, ack, now());
  }
}

export class SimulatedSidecar {
  readonly index: number;
  readonly address: string;
  readonly client: ControlPlaneClient;
  readonly #watch: SnapshotWatch;
  #received: Received | undefined;

  constructor(options: {
    index: number;
    registration: Registration & { readonly address: string };
    controlPlane: string;
    caPem: string;
    logger: Logger;
    events: SidecarEvents;
    /** Stands in for compiling and swapping the snapshot in. */
    apply: (snapshot: Snapshot) => ApplyResult;
  }) {
    this.index = options.index;
    this.address = options.registration.address;
    const { events } = options;
    this.client = new MeteredClient(options.controlPlane, options.caPem, this, events);
    this.#watch = new SnapshotWatch({
      client: this.client,
      registration: options.registration,
      logger: options.logger,
      apply: (candidate) => {
        const at = now();
        const snapshot = candidate as Snapshot;
        const verdict = options.apply(snapshot);
        this.#received = {
          hash: String(snapshot?.hash),
          registry: Array.isArray(snapshot?.registry) ? snapshot.registry.length : 0,
          ok: verdict.ok,
          at,
        };
        events.received(this);
        return verdict;
      },
    });
  }

  /** The snapshot received last (SnapshotWatch acks each one before it reads the next). */
  get received(): Received | undefined {
    return this.#received;
  }

  start(): void {
    this.#watch.start();
  }
}
