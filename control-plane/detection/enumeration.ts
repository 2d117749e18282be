import type { Alert } from '../../common/usage.ts';
import { callerAlert } from './caller-alert.ts';
import type { DetectionConfig } from './config.ts';
import type { History } from './history.ts';
import type { CallerUsage } from './window.ts';

/** The distinct resource ids a caller touched in a window (the reports' counts, or their samples if larger). */
export const distinctOf = (usage: CallerUsage) =>
  Math.max(usage.distinctResources, usage.resourceIds.size);

/**
 * enumeration: one caller walking many distinct ids of a templated route
 * (/orders/{id}) in one window: at least `enumerationFloor`, and
 * `enumerationFactor` times its own 99th percentile of the last day.
 */
export function enumerationAlert(
  usage: CallerUsage,
  history: History,
  config: DetectionConfig,
  startMs: number,
): Alert | undefined {
  if (!history.learned(startMs, config)) return undefined;
  const distinct = distinctOf(usage);
  const baseline = history.distinct.quantile(0.99);
  if (distinct < config.enumerationFloor || distinct <= config.enumerationFactor * baseline) {
    return undefined;
  }
  return callerAlert(usage, 'enumeration', 'high', startMs, {
    distinctResources: distinct,
    baselineP99: baseline,
    sampleIds: [...usage.resourceIds].slice(0, 10),
    requests: usage.requests,
  });
}
