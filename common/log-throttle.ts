/**
 * Paces log lines about something that can happen at flood rate (refused
 * connections, failed handshakes): the first is logged at once, then at
 * most one line per interval, saying how many happened since the last one.
 * A flood of bad clients must not turn into a flood of synchronous work and
 * log volume.
 */
export class LogThrottle {
  readonly #intervalMs: number;
  #since = 0;
  #lastAt = Number.NEGATIVE_INFINITY;

  constructor(intervalMs = 10_000) {
    this.#intervalMs = intervalMs;
  }

  /** Counts one occurrence; returns how many to report if a line is due now, else undefined. */
  due(now = performance.now()): number | undefined {
    this.#since++;
    if (now - this.#lastAt < this.#intervalMs) return undefined;
    this.#lastAt = now;
    const count = this.#since;
    this.#since = 0;
    return count;
  }
}
