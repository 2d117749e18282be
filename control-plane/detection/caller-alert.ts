import type { Alert } from '../../common/usage.ts';
import type { CallerUsage } from './window.ts';

/**
 * An alert about one caller on one route of a workload, in the window
 * starting at `startMs`; the evidence also names a few of the window's
 * trace ids when the sidecars traced, so the requests can be looked at.
 */
export function callerAlert(
  usage: CallerUsage,
  detector: Alert['detector'],
  severity: Alert['severity'],
  startMs: number,
  evidence: Alert['evidence'],
): Alert {
  return {
    detector,
    severity,
    principal: usage.principal,
    workload: usage.workload,
    route: usage.route,
    windowStart: new Date(startMs).toISOString(),
    evidence: usage.traceIds.size ? { ...evidence, sampleTraceIds: [...usage.traceIds] } : evidence,
  };
}
