import { backoffDelay, sleep } from '../../common/backoff.ts';
import { ControlPlaneError } from '../../common/errors.ts';
import type { Logger } from '../../common/log.ts';
import { SseParser } from '../../common/sse.ts';
import { MAX_ACK_REASON_CHARS, type Snapshot } from '../../common/wire.ts';
import type { ControlPlaneClient, Registration } from '../control-plane-client.ts';
import type { ApplyResult } from './snapshot-state.ts';

const STABLE_STREAM_MS = 10_000;

export interface SnapshotWatchOptions {
  readonly client: ControlPlaneClient;
  readonly registration: Registration;
  readonly logger: Logger;
  /** Validates, compiles and swaps in a snapshot; a failure leaves the previous one in force. */
  readonly apply: (snapshot: unknown) => ApplyResult;
  readonly onResult?: (result: ApplyResult) => void;
  /** The bundle the sidecar verifies peers with once a snapshot is handled (`trustBundleId`), named in its ack. */
  readonly trustBundle?: () => string | undefined;
  /**
   * A stream silent for this long is presumed cut (the control plane sends a
   * keep-alive comment every 15 s) and is reconnected. A network cut without
   * a reset would otherwise leave the watch waiting forever.
   */
  readonly idleTimeoutMs?: number;
}

/**
 * Keeps the snapshot watch open: on a control-plane restart or a network
 * cut it reconnects with backoff and jitter, while the sidecar goes on
 * enforcing the last snapshot it applied. Every snapshot is acked or nacked.
 */
export class SnapshotWatch {
  readonly #options: SnapshotWatchOptions;
  readonly #abort = new AbortController();
  #loop: Promise<void> | undefined;
  #refusal: string | undefined;

  constructor(options: SnapshotWatchOptions) {
    this.#options = options;
  }

  start(): void {
    this.#loop ??= this.#run();
  }

  /**
   * Why the control plane last refused this watch (403: not bound, labels,
   * address; 429: too many watches), until a watch opens again. Readiness
   * shows it, so a misconfigured sidecar says what is wrong, not only that
   * it has no snapshot.
   */
  get refusal(): string | undefined {
    return this.#refusal;
  }

  async #run(): Promise<void> {
    const { client, registration, logger } = this.#options;
    const signal = this.#abort.signal;
    let attempt = 0;
    const idleTimeoutMs = this.#options.idleTimeoutMs ?? 45_000;
    while (!signal.aborted) {
      const openedAt = Date.now();
      const silence = new AbortController();
      const idle = setTimeout(() => silence.abort(), idleTimeoutMs);
      try {
        const stream = await client.watchSnapshots(
          registration,
          AbortSignal.any([signal, silence.signal]),
        );
        this.#refusal = undefined;
        const parser = new SseParser();
        // Streaming decode: a multi-byte character split across chunks stays whole.
        const decoder = new TextDecoder('utf-8');
        for await (const chunk of stream) {
          idle.refresh();
          for (const event of parser.push(decoder.decode(chunk, { stream: true }))) {
            if (event.event !== 'snapshot') continue;
            await this.#handle(event.data);
          }
        }
        if (!signal.aborted) logger.warn('snapshot watch ended by the control plane; reconnecting');
      } catch (error) {
        if (signal.aborted) break;
        if (silence.signal.aborted) {
          logger.warn('snapshot watch silent too long, presumed cut; reconnecting', {
            idleTimeoutMs,
          });
        } else logger.warn('snapshot watch failed; keeping the last good snapshot', { error });
        if (error instanceof ControlPlaneError && error.status && error.status < 500)
          this.#refusal = error.message;
      } finally {
        clearTimeout(idle);
      }
      // Only a stream that stayed up a while proves the path healthy: one cut
      // right after its first snapshot (by a proxy, or the control plane's
      // backpressure guard) must not turn into a tight reconnect loop.
      if (Date.now() - openedAt >= STABLE_STREAM_MS) attempt = 0;
      const delay = backoffDelay(attempt++, { baseMs: 250, maxMs: 10_000 });
      await sleep(delay, signal);
    }
  }

  async #handle(data: string): Promise<void> {
    const { client, registration, logger } = this.#options;
    let parsed: unknown;
    let result: ApplyResult;
    try {
      parsed = JSON.parse(data);
    } catch {
      parsed = undefined;
    }
    try {
      result =
        parsed === undefined
          ? { ok: false, reason: 'the snapshot event is not valid JSON' }
          : this.#options.apply(parsed);
    } catch (error) {
      result = {
        ok: false,
        reason: `the snapshot could not be applied: ${(error as Error).message}`,
      };
    }
    this.#options.onResult?.(result);
    const trustBundle = this.#options.trustBundle?.();
    const snapshot = (parsed ?? {}) as Partial<Snapshot>;
    const version = String(snapshot.version ?? 'unknown');
    if (result.ok)
      logger.info('snapshot applied', { version, policies: snapshot.policies?.length });
    else
      logger.error('snapshot rejected; keeping the last good one', {
        version,
        reason: result.reason,
      });
    try {
      await client.ack(
        {
          workload: registration.workload,
          address: registration.address,
          version,
          hash: String(snapshot.hash ?? ''),
          status: result.ok ? 'applied' : 'rejected',
          ...(result.ok ? {} : { reason: result.reason.slice(0, MAX_ACK_REASON_CHARS) }),
          ...(trustBundle === undefined ? {} : { trustBundle }),
        },
        this.#abort.signal,
      );
    } catch (error) {
      logger.warn('snapshot ack failed', { error });
    }
  }

  async close(): Promise<void> {
    this.#abort.abort();
    await this.#loop;
  }
}
