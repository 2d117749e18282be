import type { Alert } from '../../common/usage.ts';
import { callerAlert } from './caller-alert.ts';
import { type DetectionConfig, windowsIn } from './config.ts';
import type { History } from './history.ts';
import type { CallerUsage } from './window.ts';

/**
 * slow-volume: low and slow. No one window stands out, but the last
 * `slowSeconds` together carry `slowFactor` times what the same caller read
 * over the same span at the same time of day yesterday (the largest such span
 * within `slowSeconds` either side, so a daily peak that comes a little
 * early is still yesterday's peak).
 */
export function slowVolumeAlert(
  usage: CallerUsage,
  history: History,
  config: DetectionConfig,
  startMs: number,
): Alert | undefined {
  const span = windowsIn(config.slowSeconds, history.windowSeconds);
  const day = windowsIn(86_400, history.windowSeconds);
  if (!history.learned(startMs, config) || history.bytes.count < day + 2 * span) return undefined;
  // Ago 0 is this window (not yet recorded); ago 1 the one before.
  const recent = usage.responseBytes + history.bytes.sumAgo(1, span - 1);
  let yesterday = 0;
  for (let ago = day - span; ago <= day + span; ago++) {
    yesterday = Math.max(yesterday, history.bytes.sumAgo(ago, ago + span - 1));
  }
  const threshold = Math.max(config.volumeFloorBytes, config.slowFactor * yesterday);
  if (recent <= threshold) return undefined;
  return callerAlert(usage, 'slow-volume', 'medium', startMs, {
    spanSeconds: span * history.windowSeconds,
    responseBytes: recent,
    sameTimeYesterdayBytes: yesterday,
    thresholdBytes: threshold,
  });
}
