/**
 * HTTPRoute status the Gateway API way: one `status.parents` entry per
 * parentRef this mesh serves (a gateway workload of ours holds a snapshot
 * watch), written under Postern's controllerName, with the conditions
 * `Accepted` (True, or False with reason UnsupportedValue and the
 * validation errors) and `ResolvedRefs` (True, or False with reason
 * InvalidKind for a backendRef that is not a core Service). Entries of
 * other controllers are left as they are, and so are ours for parents that
 * are not connected right now (a gateway restarting keeps its status).
 * Pure functions: the source (kubernetes-source.ts) writes what they return.
 */
import type { Problem } from '../../common/policy/problems.ts';
import { formatProblem } from '../../common/policy/problems.ts';

export const POSTERN_CONTROLLER = 'postern.dev/gateway-controller';

export interface Condition {
  readonly type: 'Accepted' | 'ResolvedRefs';
  readonly status: 'True' | 'False';
  readonly reason: string;
  readonly message: string;
  readonly observedGeneration?: number;
  readonly lastTransitionTime: string;
}

export interface ParentStatus {
  readonly parentRef: Readonly<Record<string, unknown>>;
  readonly controllerName: string;
  readonly conditions: readonly Condition[];
}

interface RouteObject {
  readonly metadata?: { namespace?: string; name?: string; generation?: number };
  readonly spec?: { parentRefs?: unknown; rules?: unknown };
  readonly status?: { parents?: unknown };
}

/** The Gateway API's message limit for a condition. */
const MAX_MESSAGE = 32_768;

const sameRef = (a: Readonly<Record<string, unknown>>, b: Readonly<Record<string, unknown>>) =>
  ['group', 'kind', 'name', 'namespace', 'sectionName', 'port'].every((k) => a[k] === b[k]);

/** What status.parents says now (whatever shape the API gave). */
const parentsOf = (route: RouteObject) =>
  (Array.isArray(route.status?.parents) ? route.status.parents : []) as ParentStatus[];
const parentRefsOf = (route: RouteObject) =>
  (Array.isArray(route.spec?.parentRefs) ? route.spec.parentRefs : []) as Record<string, unknown>[];

/** The backendRefs that are not a core-group Service (the only kind the gateway calls). */
function foreignBackends(route: RouteObject): string[] {
  const rules = Array.isArray(route.spec?.rules) ? route.spec.rules : [];
  const foreign: string[] = [];
  rules.forEach((rule: { backendRefs?: unknown }, r: number) => {
    const refs = Array.isArray(rule?.backendRefs) ? rule.backendRefs : [];
    refs.forEach((ref: { group?: unknown; kind?: unknown; name?: unknown }, b: number) => {
      if ((ref?.group ?? '') !== '' || (ref?.kind ?? 'Service') !== 'Service')
        foreign.push(
          `spec.rules[${r}].backendRefs[${b}]: ${String(ref?.group || 'core')}/${String(ref?.kind)} ${String(ref?.name)}`,
        );
    });
  });
  return foreign;
}

/**
 * The status.parents this controller wants on `route`: for each parentRef
 * `serves` says is ours, Accepted and ResolvedRefs; a condition whose
 * status and reason did not change keeps its lastTransitionTime.
 */
export function desiredParents(
  route: RouteObject,
  problems: readonly Problem[],
  serves: (parent: { name: string; namespace: string }) => boolean,
  now: Date,
): ParentStatus[] {
  const namespace = route.metadata?.namespace ?? 'default';
  const generation = route.metadata?.generation;
  const previous = parentsOf(route);
  const refs = parentRefsOf(route);
  const foreign = foreignBackends(route);
  const accepted = problems.length
    ? {
        status: 'False' as const,
        reason: 'UnsupportedValue',
        message: problems
          .map((p) => formatProblem(p))
          .join('; ')
          .slice(0, MAX_MESSAGE),
      }
    : { status: 'True' as const, reason: 'Accepted', message: 'accepted by the Postern gateway' };
  const resolved = foreign.length
    ? {
        status: 'False' as const,
        reason: 'InvalidKind',
        message: `the gateway calls core Services only: ${foreign.join('; ')}`.slice(
          0,
          MAX_MESSAGE,
        ),
      }
    : { status: 'True' as const, reason: 'ResolvedRefs', message: 'every backendRef is a Service' };
  const out: ParentStatus[] = [];
  for (const ref of refs) {
    if (typeof ref?.name !== 'string') continue;
    const parentNamespace = typeof ref.namespace === 'string' ? ref.namespace : namespace;
    if (!serves({ name: ref.name, namespace: parentNamespace })) continue;
    const before = previous.find(
      (p) => p?.controllerName === POSTERN_CONTROLLER && sameRef(p.parentRef ?? {}, ref),
    );
    const condition = (
      type: Condition['type'],
      state: Pick<Condition, 'status' | 'reason' | 'message'>,
    ): Condition => {
      const old = before?.conditions?.find((c) => c.type === type);
      const unchanged = old && old.status === state.status && old.reason === state.reason;
      return {
        type,
        ...state,
        ...(generation === undefined ? {} : { observedGeneration: generation }),
        lastTransitionTime: unchanged
          ? old.lastTransitionTime
          : now.toISOString().replace(/\.\d+Z$/, 'Z'),
      };
    };
    out.push({
      parentRef: ref,
      controllerName: POSTERN_CONTROLLER,
      conditions: [condition('Accepted', accepted), condition('ResolvedRefs', resolved)],
    });
  }
  return out;
}

/**
 * The status.parents to write: other controllers' entries as they are,
 * ours replaced by `desired` where it has one, ours for parents no longer
 * referenced dropped, ours for referenced parents we do not serve now kept;
 * undefined when that is what the route already says.
 */
export function mergedParents(
  route: RouteObject,
  desired: readonly ParentStatus[],
): ParentStatus[] | undefined {
  const previous = parentsOf(route);
  const refs = parentRefsOf(route);
  // In place, so an unchanged status compares equal and is not written again.
  const next: ParentStatus[] = [];
  for (const entry of previous) {
    if (entry?.controllerName !== POSTERN_CONTROLLER) {
      next.push(entry);
      continue;
    }
    if (!refs.some((ref) => sameRef(entry.parentRef ?? {}, ref))) continue;
    next.push(desired.find((d) => sameRef(d.parentRef, entry.parentRef ?? {})) ?? entry);
  }
  for (const entry of desired) if (!next.includes(entry)) next.push(entry);
  return canonical(next) === canonical(previous) ? undefined : next;
}

/** JSON with object keys sorted: the API server returns a custom resource's keys in its own order. */
function canonical(value: unknown): string {
  return JSON.stringify(value, (_key, v: unknown) =>
    v && typeof v === 'object' && !Array.isArray(v)
      ? Object.fromEntries(Object.entries(v).sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0)))
      : v,
  );
}
