import type { Alert } from '../../common/usage.ts';
import { callerAlert } from './caller-alert.ts';
import type { DetectionConfig } from './config.ts';
import type { CallerUsage } from './window.ts';

/**
 * novelty: a caller on a route of a workload it never called before, once
 * that workload has been watched for a whole learning period: lateral
 * movement, or a credential used somewhere new. Per identity, so a new pod
 * of a known caller is not new.
 */
export function noveltyAlert(
  usage: CallerUsage,
  workloadFirstSeenMs: number,
  config: DetectionConfig,
  startMs: number,
): Alert | undefined {
  if (startMs - workloadFirstSeenMs < config.learningSeconds * 1000) return undefined;
  return callerAlert(usage, 'novelty', 'medium', startMs, {
    firstCall: true,
    workloadWatchedSince: new Date(workloadFirstSeenMs).toISOString(),
    requests: usage.requests,
    responseBytes: usage.responseBytes,
  });
}
