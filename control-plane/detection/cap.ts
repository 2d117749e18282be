import type { RoutePolicy } from '../../common/policy/schema.ts';
import { parseBytes, parseDuration } from '../../common/units.ts';
import type { Alert } from '../../common/usage.ts';
import { callerAlert } from './caller-alert.ts';
import { windowsIn } from './config.ts';
import type { History } from './history.ts';
import type { CallerUsage } from './window.ts';

/** A route's `exfiltration.maxResponseBytes`: at most `bytes` to one caller per `perSeconds`. */
export interface ResponseCap {
  readonly bytes: number;
  readonly perSeconds: number;
  readonly action: 'alert' | 'block';
}

/** cap: a caller read more than the route's policy allows in the cap's span (no learning: the policy said so). */
export function capAlert(
  usage: CallerUsage,
  history: History,
  cap: ResponseCap,
  startMs: number,
): Alert | undefined {
  const span = windowsIn(cap.perSeconds, history.windowSeconds);
  const total = usage.responseBytes + history.bytes.sumAgo(1, span - 1);
  if (total <= cap.bytes) return undefined;
  return callerAlert(usage, 'cap', 'high', startMs, {
    responseBytes: total,
    capBytes: cap.bytes,
    perSeconds: cap.perSeconds,
    action: cap.action,
  });
}

/**
 * What an alert on a route does (`exfiltration.action`), found as caps are:
 * by the workload's namespace and the route's name; block where any policy
 * there says block.
 */
export function policyActions(
  policies: readonly RoutePolicy[],
): (workload: string, route: string) => 'alert' | 'block' {
  const blocking = new Set<string>();
  for (const policy of policies) {
    for (const route of policy.spec.routes) {
      if (route.exfiltration?.action === 'block')
        blocking.add(`${policy.metadata.namespace ?? 'default'}\n${route.name}`);
    }
  }
  return (workload, route) =>
    blocking.has(`${workload.slice(0, workload.indexOf('/'))}\n${route}`) ? 'block' : 'alert';
}

/**
 * The caps policies set, found by a usage record's workload and route. A
 * usage record names the workload, not its labels, so a cap applies to the
 * routes of that name in the policy's namespace; where several policies
 * there cap the same route, each of them holds.
 */
export function policyCaps(
  policies: readonly RoutePolicy[],
): (workload: string, route: string) => readonly ResponseCap[] {
  const caps = new Map<string, ResponseCap[]>();
  for (const policy of policies) {
    for (const route of policy.spec.routes) {
      const max = route.exfiltration?.maxResponseBytes;
      if (!max) continue;
      const key = `${policy.metadata.namespace ?? 'default'}\n${route.name}`;
      const held = caps.get(key) ?? [];
      held.push({
        bytes: parseBytes(max.bytes),
        perSeconds: parseDuration(max.per) / 1000,
        action: route.exfiltration?.action ?? 'alert',
      });
      caps.set(key, held);
    }
  }
  return (workload, route) =>
    caps.get(`${workload.slice(0, workload.indexOf('/'))}\n${route}`) ?? [];
}
