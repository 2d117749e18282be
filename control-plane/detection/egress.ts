import type { Alert } from '../../common/usage.ts';
import type { DetectionConfig } from './config.ts';
import type { History } from './history.ts';
import type { EgressUsage } from './window.ts';

/**
 * egress: a workload sending to a host outside the mesh it never sent to,
 * once the workload has been watched for a learning period; or sending far
 * more to a known one than its own last day (the volume rule, on bytes sent).
 */
export function egressAlert(
  usage: EgressUsage,
  history: History | undefined,
  sourceFirstSeenMs: number,
  config: DetectionConfig,
  startMs: number,
): Alert | undefined {
  const base = {
    detector: 'egress' as const,
    principal: usage.source,
    destination: usage.destination,
    windowStart: new Date(startMs).toISOString(),
  };
  if (!history) {
    if (startMs - sourceFirstSeenMs < config.learningSeconds * 1000) return undefined;
    return {
      ...base,
      severity: 'medium',
      evidence: {
        newDestination: true,
        requests: usage.requests,
        requestBytes: usage.requestBytes,
      },
    };
  }
  if (!history.learned(startMs, config)) return undefined;
  const baseline = history.bytes.quantile(0.99);
  const threshold = Math.max(config.volumeFloorBytes, config.volumeFactor * baseline);
  if (usage.requestBytes <= threshold) return undefined;
  return {
    ...base,
    severity: 'high',
    evidence: {
      requestBytes: usage.requestBytes,
      baselineP99Bytes: baseline,
      thresholdBytes: threshold,
    },
  };
}
