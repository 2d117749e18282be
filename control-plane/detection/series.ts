/**
 * The recent values of one measure (a caller's response bytes on a route,
 * per window), for baselines: a fixed ring, so memory per series is bounded
 * by the baseline's span, not by how long the series has run.
 */
export class Series {
  readonly #values: Float64Array;
  #next = 0;
  #count = 0;
  /** The last quantile asked for, answered again until `refreshEvery` values have come since. */
  #cached: { q: number; value: number } | undefined;
  #sinceSort = 0;
  readonly #refreshEvery: number;

  /**
   * A baseline a few windows old says the same as a fresh one, and sorting
   * a day of windows for every caller in every window was most of a
   * replay's time: quantiles are refreshed every `refreshEvery` pushes.
   */
  constructor(size: number, refreshEvery = 1) {
    this.#values = new Float64Array(size);
    this.#refreshEvery = refreshEvery;
  }

  get count(): number {
    return this.#count;
  }

  /** How many values it holds at most. */
  get size(): number {
    return this.#values.length;
  }

  /** The sum of the values pushed between `from` and `to` pushes ago (1 = the latest). */
  sumAgo(from: number, to: number): number {
    let sum = 0;
    const size = this.#values.length;
    for (let ago = Math.max(1, from); ago <= Math.min(to, this.#count); ago++) {
      sum += this.#values[(this.#next - ago + size * 2) % size]!;
    }
    return sum;
  }

  push(value: number): void {
    this.#values[this.#next] = value;
    this.#next = (this.#next + 1) % this.#values.length;
    this.#count = Math.min(this.#count + 1, this.#values.length);
    this.#sinceSort++;
  }

  /** The `q` quantile (0..1) of the held values, nearest rank; 0 when empty. */
  quantile(q: number): number {
    const count = this.#count;
    if (count === 0) return 0;
    const rank = Math.min(count - 1, Math.max(0, Math.ceil(q * count) - 1));
    if (this.#cached?.q === q && this.#sinceSort < this.#refreshEvery) return this.#cached.value;
    // A high quantile is one of the few largest values: one pass keeping
    // them beats sorting the day (and a replay asks for it every window).
    const fromTop = count - rank;
    const value =
      fromTop <= 8 ? kthLargest(this.#values, count, fromTop) : sorted(this.#values, count)[rank]!;
    this.#cached = { q, value };
    this.#sinceSort = 0;
    return value;
  }
}

function sorted(values: Float64Array, count: number): Float64Array {
  return values.slice(0, count).sort();
}

/** The k-th largest of the first `count` values (k = 1: the largest). */
function kthLargest(values: Float64Array, count: number, k: number): number {
  const top: number[] = [];
  for (let i = 0; i < count; i++) {
    const value = values[i]!;
    if (top.length === k && value <= top[k - 1]!) continue;
    let at = top.length === k ? k - 1 : top.length;
    while (at > 0 && top[at - 1]! < value) {
      if (at < k) top[at] = top[at - 1]!;
      at--;
    }
    top[at] = value;
  }
  return top[k - 1]!;
}
