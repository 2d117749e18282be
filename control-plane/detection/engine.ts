/**
 * The detection engine: usage reports in, alerts out, on event time only
 * (the window starts the reports carry), so the control plane running live
 * and `postern usage replay` over a recorded log decide alike. It merges the
 * replicas' reports of a window (window.ts), keeps each caller's history
 * (history.ts) and asks the detectors, pure functions each in its own file,
 * about every caller and route in every closed window.
 */
import type { Alert, UsageReport } from '../../common/usage.ts';
import { capAlert, type ResponseCap } from './cap.ts';
import { DEFAULT_DETECTION, type DetectionConfig } from './config.ts';
import { egressAlert } from './egress.ts';
import { distinctOf, enumerationAlert } from './enumeration.ts';
import { History } from './history.ts';
import { noveltyAlert } from './novelty.ts';
import { offWorkloadAlert } from './off-workload.ts';
import { meshGrowth, type SlowGrowth, slowGrowth, slowVolumeAlert } from './slow-volume.ts';
import { volumeAlert } from './volume.ts';
import { WindowAssembler, type WindowUsage } from './window.ts';
import { WorkloadAddresses } from './workload-addresses.ts';

/** A pod address vouches for its identity this long after the pod last reported (event time). */
const POD_ADDRESS_RETENTION_MS = 3600_000;

/** Enough for 50,000 callers on routes (about 1.2 GB of history at 1-minute windows). */
export const DEFAULT_MAX_HISTORIES = 50_000;

/** The policy caps of a workload's route (`namespace/workload`, route name). */
export type CapLookup = (workload: string, route: string) => readonly ResponseCap[];

export class DetectionEngine {
  readonly #config: DetectionConfig;
  readonly #caps: CapLookup;
  readonly #windows = new WindowAssembler();
  readonly #callers = new Map<string, History>();
  readonly #egress = new Map<string, History>();
  readonly #pods: WorkloadAddresses;
  /** When each workload first reported: the learning period of novelty runs from here. */
  readonly #workloadSince = new Map<string, number>();
  #latestMs = Number.NEGATIVE_INFINITY;
  /** Windows before this are closed: a report for one comes too late and is dropped. */
  #closedBeforeMs = Number.NEGATIVE_INFINITY;
  /** Reports dropped for arriving after their window closed. */
  lateReports = 0;
  /** Histories forgotten to stay within maxHistories (the least recently active first). */
  evictedHistories = 0;
  readonly #maxHistories: number;

  constructor(
    options: {
      config?: Partial<DetectionConfig>;
      caps?: CapLookup;
      /** Live: where the registry says an identity's pods run (pod addresses), beside what reports say. */
      registered?: (principal: string) => Iterable<string> | undefined;
      /**
       * At most this many caller and egress histories (each ~25 KB at
       * 1-minute windows): past it, the least recently active is forgotten,
       * and if it comes back it is new (novelty may alert on it).
       */
      maxHistories?: number;
    } = {},
  ) {
    this.#maxHistories = options.maxHistories ?? DEFAULT_MAX_HISTORIES;
    this.#config = Object.freeze({ ...DEFAULT_DETECTION, ...options.config });
    this.#caps = options.caps ?? (() => []);
    this.#pods = new WorkloadAddresses(POD_ADDRESS_RETENTION_MS, options.registered);
  }

  /**
   * Takes one report; returns the alerts of the windows it closed. A window
   * stays open for one window length after a later one begins, for the
   * replicas that report late.
   */
  add(report: UsageReport): Alert[] {
    const startMs = Date.parse(report.window.start);
    if (startMs < this.#closedBeforeMs) {
      this.lateReports++;
      return [];
    }
    this.#windows.add(report);
    this.#latestMs = Math.max(this.#latestMs, startMs);
    this.#closedBeforeMs = Math.max(
      this.#closedBeforeMs,
      this.#latestMs - report.window.seconds * 1000,
    );
    return this.#detect(this.#windows.close(this.#closedBeforeMs));
  }

  /** Closes every open window (the end of a replay). */
  flush(): Alert[] {
    return this.#detect(this.#windows.close());
  }

  /**
   * Live, quiet workloads send no later report to close their windows: a
   * window closes on the clock too, once a window length has passed since
   * it ended (the same lateness a later report allows).
   */
  expire(nowMs: number): Alert[] {
    const windows = this.#windows.close(
      Number.NEGATIVE_INFINITY,
      (window) => window.startMs + 2 * window.seconds * 1000 <= nowMs,
    );
    for (const window of windows) {
      this.#closedBeforeMs = Math.max(this.#closedBeforeMs, window.startMs + window.seconds * 1000);
    }
    return this.#detect(windows);
  }

  /** Keeps a new history, forgetting the least recently active ones past the bound. */
  #remember(map: Map<string, History>, key: string, history: History): void {
    while (this.#callers.size + this.#egress.size >= this.#maxHistories && map.size) {
      map.delete(map.keys().next().value!);
      this.evictedHistories++;
    }
    map.set(key, history);
  }

  #detect(windows: readonly WindowUsage[]): Alert[] {
    const alerts: Alert[] = [];
    const config = this.#config;
    const emit = (history: History, alert: Alert | undefined, quietAs = alert?.detector) => {
      if (!alert || !quietAs || history.quiet(quietAs, Date.parse(alert.windowStart))) return;
      history.silence(quietAs, Date.parse(alert.windowStart), config);
      alerts.push(alert);
    };
    for (const window of windows) {
      const { startMs, seconds } = window;
      for (const workload of window.workloads) {
        if (!this.#workloadSince.has(workload)) this.#workloadSince.set(workload, startMs);
      }
      this.#pods.saw(window.pods, startMs);
      // Every known caller's history first catches up to this window and
      // says how it grew over the same time yesterday: the mesh's growth,
      // their median, is what slow-volume measures each caller against.
      const growths = new Map<string, SlowGrowth>();
      for (const [key, usage] of window.callers) {
        const history = this.#callers.get(key);
        if (!history) continue;
        history.catchUp(startMs);
        const growth = slowGrowth(usage, history, config, startMs);
        if (growth) growths.set(key, growth);
      }
      const mesh = meshGrowth([...growths.values()]);
      for (const [key, usage] of window.callers) {
        let history = this.#callers.get(key);
        // What the window adds to the baseline: an anomalous window enters it
        // as the baseline's own high (its 99th percentile), so a sustained
        // attack never becomes the normal it is measured against and keeps
        // alerting, once per cooldown.
        let bytes = usage.responseBytes;
        let distinct = distinctOf(usage);
        if (!history) {
          history = new History(config, startMs, seconds);
          this.#remember(this.#callers, key, history);
          emit(
            history,
            noveltyAlert(
              usage,
              this.#workloadSince.get(usage.workload) ?? startMs,
              config,
              startMs,
            ),
          );
        } else {
          // volume and spread are one finding told two ways: one cooldown. The
          // slow detector is for what they miss, so it stays quiet while they speak.
          const bulk = volumeAlert(usage, history, config, startMs);
          emit(history, bulk, 'volume');
          if (bulk) bytes = bulk.evidence.baselineP99Bytes as number;
          else if (!history.quiet('volume', startMs)) {
            emit(history, slowVolumeAlert(usage, growths.get(key), mesh, config, startMs));
          }
          const walk = enumerationAlert(usage, history, config, startMs);
          emit(history, walk);
          if (walk) distinct = walk.evidence.baselineP99 as number;
        }
        emit(history, offWorkloadAlert(usage, this.#pods.of(usage.principal, startMs), startMs));
        for (const cap of this.#caps(usage.workload, usage.route)) {
          emit(history, capAlert(usage, history, cap, startMs));
        }
        history.record(startMs, bytes, distinct);
        // Most recently active last: what the bound forgets first is at the front.
        this.#callers.delete(key);
        this.#callers.set(key, history);
      }
      for (const [key, usage] of window.egress) {
        const history = this.#egress.get(key);
        if (history) history.catchUp(startMs);
        const alert = egressAlert(
          usage,
          history,
          this.#workloadSince.get(usage.source) ?? startMs,
          config,
          startMs,
        );
        const kept = history ?? new History(config, startMs, seconds);
        if (!history) this.#remember(this.#egress, key, kept);
        emit(kept, alert);
        kept.record(startMs, usage.requestBytes, 0);
      }
    }
    return alerts;
  }
}
