import type { Alert } from '../../common/usage.ts';
import { callerAlert } from './caller-alert.ts';
import { type DetectionConfig, windowsIn } from './config.ts';
import type { History } from './history.ts';
import type { CallerUsage } from './window.ts';

/** A caller's last `slowSeconds` against the same span at the same time of day yesterday. */
export interface SlowGrowth {
  /** Response bytes of the last span, this window included. */
  readonly recent: number;
  /** The largest span within `slowSeconds` either side of this time yesterday. */
  readonly yesterday: number;
}

/**
 * The caller's growth over the same time yesterday (the largest such span
 * within `slowSeconds` either side, so a daily peak that comes a little
 * early is still yesterday's peak); undefined until the history holds a
 * day and a span on both sides of it.
 */
export function slowGrowth(
  usage: CallerUsage,
  history: History,
  config: DetectionConfig,
  startMs: number,
): SlowGrowth | undefined {
  const span = windowsIn(config.slowSeconds, history.windowSeconds);
  const day = windowsIn(86_400, history.windowSeconds);
  if (!history.learned(startMs, config) || history.bytes.count < day + 2 * span) return undefined;
  // Ago 0 is this window (not yet recorded); ago 1 the one before.
  const recent = usage.responseBytes + history.bytes.sumAgo(1, span - 1);
  let yesterday = 0;
  for (let ago = day - span; ago <= day + span; ago++) {
    yesterday = Math.max(yesterday, history.bytes.sumAgo(ago, ago + span - 1));
  }
  return { recent, yesterday };
}

/** Fewer callers than this with a day of history say nothing about demand: the mesh's growth is taken as 1. */
const MESH_GROWTH_MIN_CALLERS = 3;

/**
 * How much the whole mesh grew over the same time yesterday: the median
 * growth of every caller with a history. A surge of demand (the one that
 * scales a deployment from 3 to 30 replicas) lifts most callers together;
 * a thief lifts one, and the median does not follow one.
 */
export function meshGrowth(growths: readonly SlowGrowth[]): number {
  const ratios = growths
    .filter((g) => g.yesterday > 0)
    .map((g) => g.recent / g.yesterday)
    .sort((a, b) => a - b);
  if (ratios.length < MESH_GROWTH_MIN_CALLERS) return 1;
  const middle = ratios.length >> 1;
  const median = ratios.length % 2 ? ratios[middle]! : (ratios[middle - 1]! + ratios[middle]!) / 2;
  return Math.max(1, median);
}

/**
 * slow-volume: low and slow. No one window stands out, but the last
 * `slowSeconds` together carry `slowFactor` times what the same caller read
 * at the same time yesterday, and that much more than the mesh as a whole
 * grew (`mesh`, from meshGrowth), so a day of higher demand is not theft.
 */
export function slowVolumeAlert(
  usage: CallerUsage,
  growth: SlowGrowth | undefined,
  mesh: number,
  config: DetectionConfig,
  startMs: number,
): Alert | undefined {
  if (!growth) return undefined;
  const threshold = Math.max(config.volumeFloorBytes, config.slowFactor * mesh * growth.yesterday);
  if (growth.recent <= threshold) return undefined;
  return callerAlert(usage, 'slow-volume', 'medium', startMs, {
    spanSeconds: config.slowSeconds,
    responseBytes: growth.recent,
    sameTimeYesterdayBytes: growth.yesterday,
    meshGrowth: Math.round(mesh * 100) / 100,
    thresholdBytes: threshold,
  });
}
