/**
 * What the detectors remember of one caller on one route (or one workload's
 * egress to one destination): per-window series aligned to time (a window
 * the caller was silent in counts as zero), when it was first seen, and
 * when each detector may speak again.
 */
import { type DetectionConfig, historyWindows } from './config.ts';
import { Series } from './series.ts';

export class History {
  readonly firstSeenMs: number;
  /** Response bytes (inbound) or bytes sent (egress) per window. */
  readonly bytes: Series;
  readonly distinct: Series;
  readonly windowSeconds: number;
  #lastMs: number;
  readonly #quietUntil = new Map<string, number>();

  constructor(config: DetectionConfig, startMs: number, windowSeconds: number) {
    const size = historyWindows(config, windowSeconds);
    // Baselines refreshed every quarter hour of windows.
    const refresh = Math.max(1, Math.round(900 / windowSeconds));
    this.bytes = new Series(size, refresh);
    this.distinct = new Series(size, refresh);
    this.firstSeenMs = startMs;
    this.windowSeconds = windowSeconds;
    this.#lastMs = startMs - windowSeconds * 1000;
  }

  /** Zeros for the windows the caller was silent in, so that "N windows ago" means N windows of time. */
  catchUp(startMs: number): void {
    const step = this.windowSeconds * 1000;
    let missing = Math.min(Math.round((startMs - this.#lastMs) / step) - 1, this.bytes.size);
    for (; missing > 0; missing--) {
      this.bytes.push(0);
      this.distinct.push(0);
    }
  }

  record(startMs: number, bytes: number, distinct: number): void {
    this.bytes.push(bytes);
    this.distinct.push(distinct);
    this.#lastMs = startMs;
  }

  /** Watched for a whole learning period by `startMs`. */
  learned(startMs: number, config: DetectionConfig): boolean {
    return startMs - this.firstSeenMs >= config.learningSeconds * 1000;
  }

  quiet(detector: string, startMs: number): boolean {
    return startMs < (this.#quietUntil.get(detector) ?? Number.NEGATIVE_INFINITY);
  }

  silence(detector: string, startMs: number, config: DetectionConfig): void {
    this.#quietUntil.set(detector, startMs + config.cooldownSeconds * 1000);
  }
}
