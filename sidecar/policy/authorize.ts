/**
 * The authorization decision: a pure function of the compiled policy and the
 * facts of one request. No sockets, no clock of its own (the caller passes
 * `nowMs`), so every case is unit-testable and replayable.
 */
import type { CompiledPolicy, CompiledRule, Mode } from './compiled-policy.ts';
import type { RouteFacts } from './route-table.ts';

export interface RequestFacts extends RouteFacts {
  /** The caller's SPIFFE ID from its mTLS certificate; undefined for an unauthenticated caller. */
  readonly principal: string | undefined;
  /** The connecting peer's IP address (IPv4 as dotted quad, IPv4-mapped IPv6 unwrapped). */
  readonly sourceAddress?: string;
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

/**
 * Whether every condition of an entry holds. JWT claims are not verified
 * yet, so a claims condition is resolved the fail-closed way (as Istio does
 * with conditions it cannot evaluate): never satisfied in an ALLOW entry,
 * always satisfied in a DENY entry.
 */
function ruleMatches(
  rule: CompiledRule,
  facts: RequestFacts,
  nowMs: number,
  inDeny: boolean,
): boolean {
  if (nowMs >= rule.expiresAtMs) return false;
  if (rule.jwtClaims && !inDeny) return false;
  if (rule.sourceIPs) {
    const address = facts.sourceAddress;
    if (!address || !rule.sourceIPs.check(address, address.includes(':') ? 'ipv6' : 'ipv4'))
      return false;
  }
  const principals = rule.principals;
  const principal = facts.principal;
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
  const route = policy.table.select(facts);
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
    if (ruleMatches(rule, facts, nowMs, true))
      return { ...base, allowed: false, reason: 'deny-rule-matched', rule: rule.label };
  }
  if (route.allow.length) {
    for (const rule of route.allow) {
      if (ruleMatches(rule, facts, nowMs, false))
        return { ...base, allowed: true, reason: 'allow-rule-matched', rule: rule.label };
    }
    return { ...base, allowed: false, reason: 'no-allow-rule-matched' };
  }
  const allowed = route.defaultAction === 'allow';
  return { ...base, allowed, reason: allowed ? 'route-default-allow' : 'route-default-deny' };
}
