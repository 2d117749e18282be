import type { RoutePolicy } from './schema.ts';

/** Whether one workload could carry labels both selectors match (no key asks for two values). */
function selectorsOverlap(a: RoutePolicy, b: RoutePolicy): boolean {
  const left = a.spec.selector?.matchLabels ?? {};
  const right = b.spec.selector?.matchLabels ?? {};
  return Object.entries(left).every(
    ([key, value]) => right[key] === undefined || right[key] === value,
  );
}

const SETTINGS = [
  ['mode', 'enforce'],
  ['mtls', 'STRICT'],
  ['defaultAction', 'deny'],
] as const;

const id = (p: RoutePolicy) => `${p.metadata.namespace ?? 'default'}/${p.metadata.name}`;

/**
 * Problems that only show across resources: two RoutePolicies whose
 * selectors can pick the same workload but that disagree on a workload-wide
 * setting (mode, mtls, defaultAction), which would leave the effective
 * policy ambiguous. Returned as [index of the later policy, message].
 */
export function overlappingSelectorProblems(policies: readonly RoutePolicy[]): [number, string][] {
  const problems: [number, string][] = [];
  policies.forEach((later, l) => {
    for (let e = 0; e < l; e++) {
      const earlier = policies[e]!;
      if ((earlier.metadata.namespace ?? 'default') !== (later.metadata.namespace ?? 'default'))
        continue;
      if (!selectorsOverlap(earlier, later)) continue;
      for (const [setting, fallback] of SETTINGS) {
        const a = earlier.spec[setting] ?? fallback;
        const b = later.spec[setting] ?? fallback;
        if (a !== b) {
          problems.push([
            l,
            `spec.${setting}: ${JSON.stringify(b)} conflicts with ${JSON.stringify(a)} in RoutePolicy ${id(earlier)}, whose selector can pick the same workloads; the effective ${setting} would be ambiguous (make the selectors disjoint or the settings equal)`,
          ]);
        }
      }
    }
  });
  return problems;
}
