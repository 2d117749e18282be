/**
 * Detection across control-plane replicas: with --redis, every usage report
 * a replica takes, and every block an operator clears, is appended to one
 * Redis stream, and every replica applies the whole stream, in its order, to
 * its own detection engine and block list. The engine decides on event time
 * only, so replicas that apply the same entries in the same order hold the
 * same windows, baselines, alerts and blocks: a caller spreading its reads
 * over pods that report to different replicas is seen whole by each.
 *
 * The stream keeps the last `retentionMs` of entries (a day and two hours by
 * default: what the baselines look back on), so a replica that starts or
 * restarts rebuilds its state by reading it from the beginning. A window a
 * replica closes on its own clock before a late report arrives is the one
 * place replicas can differ (that report counts as late on one and not the
 * other).
 *
 * Loaded only by a control plane with --redis (ioredis with it).
 */
import { Redis } from 'ioredis';
import type { Logger } from '../../common/log.ts';
import { type Alert, parseUsageReport, type UsageReport } from '../../common/usage.ts';
import type { BlockList, BlockTarget } from './blocks.ts';
import type { DetectionInput } from './input.ts';

export type LogEntry =
  | { readonly kind: 'report'; readonly report: UsageReport }
  | { readonly kind: 'clear'; readonly target: BlockTarget };

/** What the baselines look back on: a day, plus the slow detector's hour either side. */
export const DEFAULT_RETENTION_MS = 26 * 3600_000;
const READ_BATCH = 1000;
const BLOCK_MS = 2000;
const WRITE_TIMEOUT_MS = 2000;

export class SharedDetectionLog {
  readonly #key: string;
  readonly #writer: Redis;
  readonly #reader: Redis;
  readonly #apply: (entry: LogEntry) => void;
  readonly #logger: Logger;
  readonly #retentionMs: number;
  #lastId = '0';
  #closed = false;
  #reading: Promise<void> | undefined;
  /** Resolves once the reader has caught up with the stream as it was at start. */
  readonly caughtUp: Promise<void>;
  #markCaughtUp!: () => void;

  constructor(options: {
    readonly url: string;
    /** The stream's key: one per mesh, so meshes sharing a Redis do not mix. */
    readonly key: string;
    readonly apply: (entry: LogEntry) => void;
    readonly logger: Logger;
    readonly retentionMs?: number;
  }) {
    this.#key = options.key;
    this.#apply = options.apply;
    this.#logger = options.logger;
    this.#retentionMs = options.retentionMs ?? DEFAULT_RETENTION_MS;
    // A Redis that hangs fails an append within WRITE_TIMEOUT_MS: the sidecar gets a 503 and sends again.
    this.#writer = new Redis(options.url, {
      maxRetriesPerRequest: 2,
      commandTimeout: WRITE_TIMEOUT_MS,
    });
    // XREAD BLOCK holds its connection: the reader has its own, without a command timeout.
    this.#reader = new Redis(options.url, { maxRetriesPerRequest: null });
    for (const redis of [this.#writer, this.#reader]) redis.on('error', () => {});
    this.caughtUp = new Promise((resolve) => {
      this.#markCaughtUp = resolve;
    });
  }

  /** Reads the stream from its start, then follows it. */
  start(): void {
    this.#reading ??= this.#follow();
  }

  /** Appends an entry for every replica (this one included, when its reader gets to it). */
  async append(entry: LogEntry): Promise<void> {
    await this.#writer.xadd(
      this.#key,
      'MINID',
      '~',
      String(Date.now() - this.#retentionMs),
      '*',
      'e',
      JSON.stringify(entry),
    );
  }

  /**
   * Whether this replica is the first to claim `alert`: every replica raises
   * it, one exports it. Claims last two days, longer than any window stays open.
   */
  async claimAlert(alert: Alert): Promise<boolean> {
    const id = [
      alert.detector,
      alert.principal,
      alert.workload ?? '',
      alert.route ?? alert.destination ?? '',
      alert.windowStart,
    ].join('|');
    const claimed = await this.#writer.set(`${this.#key}:alert:${id}`, '1', 'EX', 172_800, 'NX');
    return claimed === 'OK';
  }

  async #follow(): Promise<void> {
    let failing = false;
    while (!this.#closed) {
      try {
        const answer = (await this.#reader.xread(
          'COUNT',
          READ_BATCH,
          'BLOCK',
          BLOCK_MS,
          'STREAMS',
          this.#key,
          this.#lastId,
        )) as [string, [string, string[]][]][] | null;
        const entries = answer?.[0]?.[1] ?? [];
        for (const [id, fields] of entries) {
          this.#lastId = id;
          this.#applyRaw(fields[1]);
        }
        if (entries.length < READ_BATCH) this.#markCaughtUp();
        if (failing) this.#logger.info('shared detection log: reading again', { key: this.#key });
        failing = false;
      } catch (error) {
        if (this.#closed) return;
        if (!failing)
          this.#logger.warn('shared detection log: Redis does not answer; retrying', { error });
        failing = true;
        await new Promise((resolve) => setTimeout(resolve, 1000));
      }
    }
  }

  #applyRaw(raw: string | undefined): void {
    let entry: LogEntry;
    try {
      entry = JSON.parse(raw ?? '') as LogEntry;
    } catch {
      this.#logger.warn('shared detection log: an entry that is not JSON was skipped', {
        key: this.#key,
      });
      return;
    }
    // Another replica validated it; this one checks again rather than trust what is in Redis.
    if (entry?.kind === 'clear') {
      const target = entry.target as Partial<BlockTarget> | undefined;
      if (
        typeof target?.principal !== 'string' ||
        typeof target.workload !== 'string' ||
        typeof target.route !== 'string'
      ) {
        this.#logger.warn('shared detection log: a clear without its target was skipped');
        return;
      }
    } else if (entry?.kind === 'report') {
      const parsed = parseUsageReport(entry.report);
      if (!parsed.ok) {
        this.#logger.warn('shared detection log: a report that does not parse was skipped', {
          problems: parsed.problems.slice(0, 3),
        });
        return;
      }
    } else {
      this.#logger.warn('shared detection log: an entry of no known kind was skipped');
      return;
    }
    this.#apply(entry);
  }

  /**
   * The API's input through this log: a report is appended (a 503 to the
   * sidecar when Redis does not take it, and the sidecar sends it again); a
   * clear is applied here at once and appended for the other replicas.
   */
  input(blocks: BlockList): DetectionInput {
    return {
      report: (report) => this.append({ kind: 'report', report }),
      clear: async (target) => {
        if (!blocks.clear(target)) return false;
        await this.append({ kind: 'clear', target });
        await blocks.saved();
        return true;
      },
    };
  }

  async close(): Promise<void> {
    this.#closed = true;
    // disconnect, not quit: a Redis that hangs would never answer QUIT. The
    // reading loop is not awaited: an XREAD queued while ioredis reconnects
    // to a Redis that went away is never settled by disconnect(), and the
    // loop ends by itself (#closed) if it ever is.
    this.#reader.disconnect();
    this.#writer.disconnect();
  }
}
