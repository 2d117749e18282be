/**
 * The authorization decision: a pure function of the compiled policy and the
 * facts of one request. No sockets, no clock of its own (the caller passes
 * `nowMs`), so every case is unit-testable and replayable.
 */
import type {
  CompiledPath,
  CompiledPolicy,
  CompiledRoute,
  CompiledRule,
  Mode,
} from './compiled-policy.ts';

export interface RequestFacts {
  readonly method: string;
  /** Canonical path (no query). */
  readonly path: string;
  /** The caller's SPIFFE ID from its mTLS certificate; undefined for an unauthenticated caller. */
  readonly principal: string | undefined;
}

export type DecisionReason =
  | 'no-snapshot'
  | 'mesh-default-deny'
  | 'mesh-default-allow-authenticated'
  | 'unauthenticated'
  | 'deny-rule-matched'
  | 'allow-rule-matched'
  | 'no-allow-rule-matched'
  | 'no-route-default-allow'
  | 'no-route-default-deny'
  | 'route-default-allow'
  | 'route-default-deny';

export interface Decision {
  /** What the policy decided. In audit mode the request goes through even when this is false. */
  readonly allowed: boolean;
  readonly reason: DecisionReason;
  readonly mode: Mode;
  /** `namespace/name` of the deciding RoutePolicy, when one decided. */
  readonly policy?: string;
  readonly route?: string;
  /** `allow[0]`, `deny[1]`: the entry that decided, when one did. */
  readonly rule?: string;
}

// Decisions that do not depend on the route are shared objects, not allocated per request.
const NO_SNAPSHOT: Decision = Object.freeze({
  allowed: false,
  reason: 'no-snapshot',
  mode: 'enforce',
});
const MESH_DENY: Decision = Object.freeze({
  allowed: false,
  reason: 'mesh-default-deny',
  mode: 'enforce',
});
const MESH_ALLOW: Decision = Object.freeze({
  allowed: true,
  reason: 'mesh-default-allow-authenticated',
  mode: 'enforce',
});
const UNAUTHENTICATED: Decision = Object.freeze({
  allowed: false,
  reason: 'unauthenticated',
  mode: 'enforce',
});

function pathMatches(path: CompiledPath, requestPath: string): boolean {
  switch (path.kind) {
    case 'any':
      return true;
    case 'exact':
      return requestPath === path.value;
    case 'prefix':
      return (
        requestPath.startsWith(path.value) &&
        (requestPath.length === path.value.length ||
          requestPath.charCodeAt(path.value.length) === 47) // '/'
      );
    case 'template': {
      const segments = path.segments;
      let start = 0;
      for (let i = 0; i < segments.length; i++) {
        if (start > requestPath.length) return false;
        let end = requestPath.indexOf('/', start);
        if (end === -1) end = requestPath.length;
        const literal = segments[i];
        if (literal === null) {
          if (end === start) return false; // a parameter is never empty
        } else if (requestPath.slice(start, end) !== literal) return false;
        start = end + 1;
      }
      return start === requestPath.length + 1;
    }
  }
}

export function selectRoute(
  policy: CompiledPolicy,
  facts: RequestFacts,
): CompiledRoute | undefined {
  for (const route of policy.routes) {
    if (route.methods && !route.methods.has(facts.method)) continue;
    if (pathMatches(route.path, facts.path)) return route;
  }
  return undefined;
}

function ruleMatches(rule: CompiledRule, principal: string | undefined, nowMs: number): boolean {
  if (nowMs >= rule.expiresAtMs) return false;
  // JWT claims are not verified yet: an entry that requires them cannot be satisfied.
  if (rule.jwtClaims) return false;
  const principals = rule.principals;
  if (principals) {
    if (principal === undefined) return false;
    if (
      !principals.any &&
      !principals.exact.has(principal) &&
      !principals.prefixes.some((p) => principal.startsWith(p))
    ) {
      return false;
    }
  }
  return true;
}

export function authorize(
  policy: CompiledPolicy | undefined,
  facts: RequestFacts,
  nowMs: number,
): Decision {
  if (!policy) return NO_SNAPSHOT;
  if (policy.unselected) {
    if (policy.meshDefault === 'deny') return MESH_DENY;
    return facts.principal === undefined ? UNAUTHENTICATED : MESH_ALLOW;
  }
  const route = selectRoute(policy, facts);
  if (!route) {
    const allowed = policy.defaultAction === 'allow';
    return {
      allowed,
      reason: allowed ? 'no-route-default-allow' : 'no-route-default-deny',
      mode: policy.mode,
      policy: policy.defaultPolicy,
    };
  }
  const base = { mode: route.mode, policy: route.policy, route: route.name };
  for (const rule of route.deny) {
    if (ruleMatches(rule, facts.principal, nowMs))
      return { ...base, allowed: false, reason: 'deny-rule-matched', rule: rule.label };
  }
  if (route.allow.length) {
    for (const rule of route.allow) {
      if (ruleMatches(rule, facts.principal, nowMs))
        return { ...base, allowed: true, reason: 'allow-rule-matched', rule: rule.label };
    }
    return { ...base, allowed: false, reason: 'no-allow-rule-matched' };
  }
  const allowed = route.defaultAction === 'allow';
  return { ...base, allowed, reason: allowed ? 'route-default-allow' : 'route-default-deny' };
}
