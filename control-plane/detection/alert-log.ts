import type { Alert } from '../../common/usage.ts';

/** The alerts the control plane keeps for GET /v1/alerts: the newest `capacity`, newest first. */
export class AlertLog {
  readonly #alerts: Alert[] = [];
  readonly #capacity: number;
  /** Every alert ever added, including those dropped to stay within capacity. */
  total = 0;

  constructor(capacity = 10_000) {
    this.#capacity = capacity;
  }

  add(alerts: readonly Alert[]): void {
    for (const alert of alerts) {
      this.#alerts.push(alert);
      this.total++;
    }
    // Dropped in batches, so that a long run of alerts is not a shift per alert.
    if (this.#alerts.length > this.#capacity * 1.25) {
      this.#alerts.splice(0, this.#alerts.length - this.#capacity);
    }
  }

  /** Up to `limit` alerts, newest first. */
  newest(limit: number): Alert[] {
    const kept = this.#alerts.slice(-Math.min(limit, this.#capacity));
    return kept.reverse();
  }
}
