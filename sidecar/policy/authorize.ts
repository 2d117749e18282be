/**
 * The authorization decision: a pure function of the compiled policy and the
 * facts of one request. No sockets, no clock of its own (the caller passes
 * `nowMs`), so every case is unit-testable and replayable.
 */
import { principalMatches } from '../../common/policy/principals.ts';
import type { CompiledPolicy, CompiledRule } from './compiled-policy.ts';
import { type Decision, decision } from './decision.ts';
import type { RouteFacts } from './route-table.ts';

export interface RequestFacts extends RouteFacts {
  /** The caller's SPIFFE ID from its mTLS certificate; undefined for an unauthenticated caller. */
  readonly principal: string | undefined;
  /** The connecting peer's IP address (IPv4 as dotted quad, IPv4-mapped IPv6 unwrapped). */
  readonly sourceAddress?: string;
}

// Every decision is a shared object: these four here, the rest built with the
// compiled snapshot. A decision allocates nothing.
const NO_SNAPSHOT = decision({
  allowed: false,
  reason: 'no-snapshot',
  mode: 'enforce',
});
const MESH_DENY = decision({
  allowed: false,
  reason: 'mesh-default-deny',
  mode: 'enforce',
});
const MESH_ALLOW = decision({
  allowed: true,
  reason: 'mesh-default-allow-authenticated',
  mode: 'enforce',
});
const UNAUTHENTICATED = decision({
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
    if (!principalMatches(principals, principal)) return false;
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
  if (!route) return policy.noRoute;
  for (const rule of route.deny) if (ruleMatches(rule, facts, nowMs, true)) return rule.decision;
  if (!route.allow.length) return route.byDefault;
  for (const rule of route.allow) if (ruleMatches(rule, facts, nowMs, false)) return rule.decision;
  return route.noAllowMatched;
}
