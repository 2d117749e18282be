import type { ServerResponse } from 'node:http';
import { formatSseEvent } from '../../common/sse.ts';
import type { Snapshot } from '../../common/wire.ts';

export interface SnapshotStreamOptions {
  /** Interval of keep-alive comments while the stream is idle. */
  readonly keepAliveMs: number;
  /** A stream that has not taken a queued snapshot for this long is cut (its reader is gone or stuck). */
  readonly stalledAfterMs: number;
  /** Called when the stream is cut for not reading. */
  readonly onStalled: () => void;
}

/**
 * One sidecar's snapshot watch as a Server-Sent Events response. A sidecar
 * that stops reading must not make the control plane buffer every snapshot
 * for it: while earlier bytes are unread, a new snapshot replaces the one
 * waiting (only the latest matters) instead of queueing behind it, so at most
 * two snapshots per stream sit in memory beyond the socket's own buffers (the
 * one being written and the latest). A stream blocked for `stalledAfterMs`
 * from the moment any write (a snapshot or a keep-alive) could not be handed
 * to the socket is cut, even if nothing else is sent; the sidecar gets the
 * latest whole when it reconnects.
 */
export class SnapshotStream {
  readonly #res: ServerResponse;
  readonly #options: SnapshotStreamOptions;
  readonly #keepAlive: NodeJS.Timeout;
  #waiting: Snapshot | undefined;
  #stallTimer: NodeJS.Timeout | undefined;

  constructor(res: ServerResponse, options: SnapshotStreamOptions) {
    this.#res = res;
    this.#options = options;
    res.on('drain', () => this.#drained());
    // A keep-alive behind unread bytes would only add to them; none before
    // the first snapshot has opened the stream.
    this.#keepAlive = setInterval(() => {
      if (res.headersSent && !res.writableNeedDrain && !res.write(': keep-alive\n\n'))
        this.#blocked();
    }, options.keepAliveMs);
    res.on('close', () => {
      clearInterval(this.#keepAlive);
      clearTimeout(this.#stallTimer);
    });
  }

  /** The first snapshot opens the stream (so a watch refused before it still gets an HTTP error). */
  send(snapshot: Snapshot): void {
    if (this.#res.destroyed) return;
    if (!this.#res.headersSent) {
      this.#res.writeHead(200, {
        'content-type': 'text/event-stream',
        'cache-control': 'no-store',
      });
    }
    if (this.#res.writableNeedDrain) {
      this.#waiting = snapshot;
      this.#blocked();
      return;
    }
    if (!this.#res.write(formatSseEvent('snapshot', JSON.stringify(snapshot)))) this.#blocked();
  }

  /** The socket took less than we wrote: from then the reader has `stalledAfterMs` to catch up (a timer already running keeps its start). */
  #blocked(): void {
    this.#stallTimer ??= setTimeout(() => {
      this.#options.onStalled();
      this.#res.destroy();
    }, this.#options.stalledAfterMs);
  }

  #drained(): void {
    clearTimeout(this.#stallTimer);
    this.#stallTimer = undefined;
    const waiting = this.#waiting;
    this.#waiting = undefined;
    if (waiting) this.send(waiting);
  }

  /** Ends the stream from this side at once, dropping anything unread (the sidecar reconnects, or learns why it may not). */
  cut(): void {
    this.#res.destroy();
  }

  /** Bytes written but not yet taken by the socket (tests and diagnostics). */
  get unreadBytes(): number {
    return this.#res.writableLength;
  }
}
