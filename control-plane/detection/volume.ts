import type { Alert } from '../../common/usage.ts';
import { callerAlert } from './caller-alert.ts';
import type { DetectionConfig } from './config.ts';
import type { History } from './history.ts';
import type { CallerUsage } from './window.ts';

/**
 * volume and spread: a window in which a caller read far more from a route
 * than its own last day says it does (its 99th percentile, daily peaks
 * included, times `volumeFactor`, above a floor). Counted over every replica
 * the caller reached; when no single replica saw the threshold alone, the
 * caller spread its reads so that no one sidecar could, and the alert says
 * `spread`.
 */
export function volumeAlert(
  usage: CallerUsage,
  history: History,
  config: DetectionConfig,
  startMs: number,
): Alert | undefined {
  if (!history.learned(startMs, config)) return undefined;
  const baseline = history.bytes.quantile(0.99);
  const threshold = Math.max(config.volumeFloorBytes, config.volumeFactor * baseline);
  if (usage.responseBytes <= threshold) return undefined;
  let largestPod = 0;
  for (const bytes of usage.byPod.values()) largestPod = Math.max(largestPod, bytes);
  const spread = usage.byPod.size >= config.spreadPods && largestPod <= threshold;
  return callerAlert(usage, spread ? 'spread' : 'volume', 'high', startMs, {
    responseBytes: usage.responseBytes,
    baselineP99Bytes: baseline,
    thresholdBytes: threshold,
    requests: usage.requests,
    replicas: usage.byPod.size,
    largestReplicaBytes: largestPod,
    windowSeconds: history.windowSeconds,
  });
}
