import { totalmem } from 'node:os';
import { monitorEventLoopDelay } from 'node:perf_hooks';
import { getHeapStatistics, setFlagsFromString } from 'node:v8';
import { runInNewContext } from 'node:vm';

/** What the guard reads of the process every sample. */
export interface LoadReading {
  /** Median event-loop delay over the last sample period, in ms. */
  readonly lagMs: number;
  /**
   * How full memory is (0..1): the larger of the live V8 heap over V8's heap
   * limit and what the process holds (heap in use plus Buffers) over its
   * memory limit (the container's, or one set with --limits).
   */
  readonly memoryRatio: number;
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
  readonly memoryShed: number;
  readonly memoryRecover: number;
  readonly sampleMs: number;
}

/**
 * A sidecar's loop answering a request takes well under a millisecond; a
 * median delay of 200 ms for half a second means every request waits
 * behind a queue it is only adding to (a process loading its modules, or
 * on a busy machine, is late by tens of milliseconds, briefly). The memory
 * marks keep the last tenth of the limit for what is in flight, so the
 * process sheds before V8 or the kernel's OOM killer ends it.
 */
export const DEFAULT_OVERLOAD: OverloadThresholds = Object.freeze({
  shedAfter: 2,
  lagShedMs: 200,
  lagRecoverMs: 50,
  memoryShed: 0.9,
  memoryRecover: 0.8,
  sampleMs: 250,
});

/**
 * The memory a process may use: the container's limit (cgroup) when it has
 * one, else none beyond V8's heap limit. V8 sizes its heap from the host's
 * memory, not the container's: a sidecar in a 256 MiB container reads a
 * heap limit of gigabytes and would be OOM-killed long before 90% of it.
 */
export function containerMemoryLimit(): number | undefined {
  const limit = process.constrainedMemory();
  // Unconstrained, Node reports 0 or a huge number (cgroup v2's "max").
  return limit > 0 && limit < totalmem() ? limit : undefined;
}

// Two full collections cost a sidecar 30-80 ms: at most that often, and only near the marks.
const COLLECT_INTERVAL_MS = 10_000;

/**
 * V8's full collection, which Node exposes only with --expose-gc: the flag
 * set now applies to contexts made after it, so one context is made to
 * fetch the function.
 */
function fullCollection(): () => void {
  setFlagsFromString('--expose-gc');
  return runInNewContext('gc') as () => void;
}

/**
 * The process's own readings: event-loop delay from a histogram (reset each
 * read); memory from V8 and process.memoryUsage(). What is held (heap in use
 * plus Buffers), not RSS: the allocator keeps RSS at its high-water mark
 * after a burst, and shedding on that would never stop (Envoy's overload
 * manager reads allocated bytes for the same reason).
 */
export function processLoad(memoryLimit: number | undefined = containerMemoryLimit()): {
  read(): LoadReading;
  stop(): void;
} {
  const delay = monitorEventLoopDelay({ resolution: 10 });
  delay.enable();
  const heapLimit = getHeapStatistics().heap_size_limit;
  const held = () => {
    const { heapUsed, external } = process.memoryUsage();
    const heap = heapUsed / heapLimit;
    return memoryLimit === undefined ? heap : Math.max(heap, (heapUsed + external) / memoryLimit);
  };
  // Without a memory limit, the heap ratio alone: V8 collects before its own limit.
  if (memoryLimit === undefined) return loopAndMemory(delay, held);
  const collect = fullCollection();
  let collectedAt = Number.NEGATIVE_INFINITY;
  // Heap in use counts garbage until a collection finds it, and an idle
  // process collects nothing: the Buffers of streams long gone would read
  // as held, and shedding would never stop. Near the marks, full
  // collections first (at most once per 10 s, 30-80 ms for a sidecar's
  // heap) make the reading what is really held: Envoy's overload manager
  // shrinks its heap at such marks for the same reason.
  const memory = () => {
    const ratio = held();
    const now = performance.now();
    if (ratio < DEFAULT_OVERLOAD.memoryRecover || now - collectedAt < COLLECT_INTERVAL_MS)
      return ratio;
    collectedAt = now;
    // Twice: V8 frees the memory of dead Buffers at the collection after
    // the one that found them dead (measured on Node 24: one collection
    // left 40 MB of unreferenced Buffers counted, the second freed them).
    collect();
    collect();
    return held();
  };
  return loopAndMemory(delay, memory);
}

function loopAndMemory(
  delay: ReturnType<typeof monitorEventLoopDelay>,
  memory: () => number,
): { read(): LoadReading; stop(): void } {
  return {
    read() {
      // The median, not the mean or the maximum: one long GC pause or one
      // slow request is a single late tick among dozens, a loop that is late
      // on every turn is most of them. The histogram records whole intervals,
      // its own 10 ms resolution included; what is beyond it is lag.
      const lagMs = delay.count ? Math.max(0, delay.percentile(50) / 1e6 - 10) : 0;
      delay.reset();
      return { lagMs, memoryRatio: memory() };
    },
    stop: () => delay.disable(),
  };
}

/**
 * Decides, once per sample period, whether the sidecar sheds new requests:
 * when its event loop lags or its memory nears the limit, answering 503 with
 * Retry-After at once serves callers better than queueing them behind a
 * loop that is already late (they retry elsewhere), and keeps the admin
 * endpoints answering. Per request it costs one boolean read.
 */
export class OverloadGuard {
  #shedding = false;
  #last: LoadReading = { lagMs: 0, memoryRatio: 0 };
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
    const over = reading.lagMs >= t.lagShedMs || reading.memoryRatio >= t.memoryShed;
    this.#over = over ? this.#over + 1 : 0;
    const next = this.#shedding
      ? reading.lagMs >= t.lagRecoverMs || reading.memoryRatio >= t.memoryRecover
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
      memoryRatio: Math.round(this.#last.memoryRatio * 1000) / 1000,
      refused: this.#shed,
    };
  }

  close(): void {
    clearInterval(this.#timer);
    this.#source.stop?.();
  }
}
