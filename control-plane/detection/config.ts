/**
 * The detectors' settings, in time and bytes; the window counts they imply
 * follow from each series' window length.
 */
export interface DetectionConfig {
  /** How long a caller, route or workload is watched before it may alert (a whole daily cycle). */
  readonly learningSeconds: number;
  /** volume: a window's response bytes above this many times the caller's 99th percentile of the last day... */
  readonly volumeFactor: number;
  /** ...and above this floor, so that small callers' noise never alerts. */
  readonly volumeFloorBytes: number;
  /** slow-volume: the span summed, against the same span one day earlier (± the span itself). */
  readonly slowSeconds: number;
  readonly slowFactor: number;
  /** enumeration: distinct resource ids in a window, at least this many... */
  readonly enumerationFloor: number;
  /** ...and this many times the caller's 99th percentile of the last day. */
  readonly enumerationFactor: number;
  /** spread: a volume alert over at least this many replicas, none of which saw the threshold alone. */
  readonly spreadPods: number;
  /** After an alert, the same detector is quiet for this caller and route this long. */
  readonly cooldownSeconds: number;
}

export const DEFAULT_DETECTION: DetectionConfig = Object.freeze({
  learningSeconds: 86_400,
  volumeFactor: 4,
  volumeFloorBytes: 1024 * 1024,
  slowSeconds: 3600,
  slowFactor: 2,
  enumerationFloor: 50,
  enumerationFactor: 5,
  spreadPods: 3,
  cooldownSeconds: 3600,
});

/** Windows a series keeps: a day, plus the slow span on both sides of the same time a day ago. */
export function historyWindows(config: DetectionConfig, windowSeconds: number): number {
  return Math.ceil((86_400 + 2 * config.slowSeconds) / windowSeconds) + 1;
}

export const windowsIn = (seconds: number, windowSeconds: number) =>
  Math.max(1, Math.round(seconds / windowSeconds));
