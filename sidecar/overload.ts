import { monitorEventLoopDelay } from 'node:perf_hooks';
import { getHeapStatistics } from 'node:v8';

/** What the guard reads of the process every sample. */
export interface LoadReading {
  /** Median event-loop delay over the last sample period, in ms. */
  readonly lagMs: number;
  /** Live heap over the heap limit V8 was given (0..1). */
  readonly heapRatio: number;
}

/**
 * When to shed and when to stop, with hysteresis so the guard does not
 * flap: shed when either reading passes its `shed` mark, recover when both
 * are under their `recover` marks.
 */
export interface OverloadThresholds {
  /** Readings in a row past a shed mark before shedding starts: a moment's spike (start-up, one GC) is not overload. */
  readonly shedAfter: number;
  readonly lagShedMs: number;
  readonly lagRecoverMs: number;
  readonly heapShed: number;
  readonly heapRecover: number;
  readonly sampleMs: number;
}

/**
 * A sidecar's loop answering a request takes well under a millisecond; a
 * median delay of 200 ms for half a second means every request waits
 * behind a queue it is only adding to (a process loading its modules, or
 * on a busy machine, is late by tens of milliseconds, briefly). The heap marks keep the last tenth of the limit for what is in
 * flight, so the process sheds before V8 kills it.
 */
export const DEFAULT_OVERLOAD: OverloadThresholds = Object.freeze({
  shedAfter: 2,
  lagShedMs: 200,
  lagRecoverMs: 50,
  heapShed: 0.9,
  heapRecover: 0.8,
  sampleMs: 250,
});

/** The process's own readings: event-loop delay from a histogram (reset each read), heap from V8. */
export function processLoad(): { read(): LoadReading; stop(): void } {
  const delay = monitorEventLoopDelay({ resolution: 10 });
  delay.enable();
  const limit = getHeapStatistics().heap_size_limit;
  return {
    read() {
      // The median, not the mean or the maximum: one long GC pause or one
      // slow request is a single late tick among dozens, a loop that is late
      // on every turn is most of them. The histogram records whole intervals,
      // its own 10 ms resolution included; what is beyond it is lag.
      const lagMs = delay.count ? Math.max(0, delay.percentile(50) / 1e6 - 10) : 0;
      delay.reset();
      return { lagMs, heapRatio: process.memoryUsage().heapUsed / limit };
    },
    stop: () => delay.disable(),
  };
}

/**
 * Decides, once per sample period, whether the sidecar sheds new requests:
 * when its event loop lags or its heap nears the limit, answering 503 with
 * Retry-After at once serves callers better than queueing them behind a
 * loop that is already late (they retry elsewhere), and keeps the admin
 * endpoints answering. Per request it costs one boolean read.
 */
export class OverloadGuard {
  #shedding = false;
  #last: LoadReading = { lagMs: 0, heapRatio: 0 };
  #shed = 0;
  #over = 0;
  readonly #timer: NodeJS.Timeout;
  readonly #source: { read(): LoadReading; stop?(): void };
  readonly #thresholds: OverloadThresholds;
  readonly #onChange: (shedding: boolean, reading: LoadReading) => void;

  constructor(
    onChange: (shedding: boolean, reading: LoadReading) => void,
    source: { read(): LoadReading; stop?(): void } = processLoad(),
    thresholds: OverloadThresholds = DEFAULT_OVERLOAD,
  ) {
    this.#onChange = onChange;
    this.#source = source;
    this.#thresholds = thresholds;
    this.#timer = setInterval(() => this.sample(), thresholds.sampleMs).unref();
  }

  /** Whether new requests are refused now. */
  get shedding(): boolean {
    return this.#shedding;
  }

  /** Counts one refused request (for /stats). */
  refused(): void {
    this.#shed++;
  }

  /** Takes a reading and decides (the timer calls it; tests may too). */
  sample(): void {
    const reading = this.#source.read();
    this.#last = reading;
    const t = this.#thresholds;
    const over = reading.lagMs >= t.lagShedMs || reading.heapRatio >= t.heapShed;
    this.#over = over ? this.#over + 1 : 0;
    const next = this.#shedding
      ? reading.lagMs >= t.lagRecoverMs || reading.heapRatio >= t.heapRecover
      : this.#over >= t.shedAfter;
    if (next === this.#shedding) return;
    this.#shedding = next;
    this.#onChange(next, reading);
  }

  /** For /stats. */
  describe(): object {
    return {
      shedding: this.#shedding,
      lagMs: Math.round(this.#last.lagMs),
      heapRatio: Math.round(this.#last.heapRatio * 1000) / 1000,
      refused: this.#shed,
    };
  }

  close(): void {
    clearInterval(this.#timer);
    this.#source.stop?.();
  }
}
