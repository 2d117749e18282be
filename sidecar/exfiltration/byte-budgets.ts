/**
 * What each caller has read from each capped route (`exfiltration:
 * { maxResponseBytes, action: block }`) in the current period, as this
 * sidecar saw it: fixed periods aligned to the clock, so a caller's budget
 * comes back whole at each period's start. Per sidecar, like a local rate
 * limit: a caller reading through N replicas can read N caps' worth, which
 * the control plane's detectors see merged (cap, spread) and block.
 *
 * Bounded: past `maxEntries`, the oldest entries go (their callers start
 * again from a whole budget), counted by `onEvict`.
 */
export const DEFAULT_MAX_BUDGETS = 100_000;

interface Budget {
  periodStartMs: number;
  perMs: number;
  used: number;
}

export class ByteBudgets {
  readonly #entries = new Map<string, Budget>();
  readonly #maxEntries: number;
  readonly #onEvict: () => void;

  constructor(maxEntries = DEFAULT_MAX_BUDGETS, onEvict: () => void = () => {}) {
    this.#maxEntries = maxEntries;
    this.#onEvict = onEvict;
  }

  get size(): number {
    return this.#entries.size;
  }

  /** Bytes `key` may still read in the period of `nowMs` under a cap of `bytes` per `perMs`. */
  remaining(key: string, bytes: number, perMs: number, nowMs: number): number {
    const budget = this.#entries.get(key);
    if (!budget || budget.periodStartMs !== periodOf(nowMs, perMs)) return bytes;
    return Math.max(0, bytes - budget.used);
  }

  /** Counts `read` bytes against `key` in the period of `nowMs`. */
  spend(key: string, read: number, perMs: number, nowMs: number): void {
    const start = periodOf(nowMs, perMs);
    let budget = this.#entries.get(key);
    if (!budget) {
      if (this.#entries.size >= this.#maxEntries) {
        this.#entries.delete(this.#entries.keys().next().value!);
        this.#onEvict();
      }
      budget = { periodStartMs: start, perMs, used: 0 };
      this.#entries.set(key, budget);
    } else if (budget.periodStartMs !== start) {
      budget.periodStartMs = start;
      budget.perMs = perMs;
      budget.used = 0;
    }
    budget.used += read;
  }

  /** When the period of `nowMs` ends: when a capped caller may read again. */
  static periodEndMs(nowMs: number, perMs: number): number {
    return periodOf(nowMs, perMs) + perMs;
  }

  /** Drops entries whose period has ended (they would start whole anyway). */
  sweep(nowMs: number): void {
    for (const [key, budget] of this.#entries) {
      if (budget.periodStartMs + budget.perMs <= nowMs) this.#entries.delete(key);
    }
  }
}

function periodOf(nowMs: number, perMs: number): number {
  return Math.floor(nowMs / perMs) * perMs;
}
