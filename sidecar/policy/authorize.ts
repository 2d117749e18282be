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
  /** The claims of the request's verified JWT; undefined without one. */
  readonly claims?: Readonly<Record<string, unknown>>;
  /** base64url SHA-256 of the caller's mTLS certificate (DER): what a bound token's cnf.x5t#S256 names. */
  readonly certificateThumbprint?: string;
}

/** Whether a verified token is bound to the caller's certificate (RFC 8705 section 3.1). */
export function boundToCertificate(
  claims: Readonly<Record<string, unknown>> | undefined,
  thumbprint: string | undefined,
): boolean {
  const cnf = claims?.cnf as Record<string, unknown> | undefined;
  const bound = cnf?.['x5t#S256'];
  return thumbprint !== undefined && typeof bound === 'string' && bound === thumbprint;
}

/**
 * Whether verified `claims` hold every required value: a string claim equal
 * to it or, space-separated (`scope`), containing it; an array claim
 * containing it; a number or boolean whose text is it. No token: no match.
 */
export function claimsMatch(
  required: Readonly<Record<string, string>>,
  claims: Readonly<Record<string, unknown>> | undefined,
): boolean {
  if (!claims) return false;
  for (const name in required) {
    const want = required[name]!;
    const value = claims[name];
    if (typeof value === 'string') {
      if (value !== want && !value.split(' ').includes(want)) return false;
    } else if (Array.isArray(value)) {
      if (!value.includes(want)) return false;
    } else if (typeof value === 'number' || typeof value === 'boolean') {
      if (String(value) !== want) return false;
    } else return false;
  }
  return true;
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

/** Whether every condition of an entry holds (conditions are ANDed; an entry's lists are ORed). */
function ruleMatches(rule: CompiledRule, facts: RequestFacts, nowMs: number): boolean {
  if (nowMs >= rule.expiresAtMs) return false;
  if (rule.jwtClaims && !claimsMatch(rule.jwtClaims, facts.claims)) return false;
  if (rule.certificateBound && !boundToCertificate(facts.claims, facts.certificateThumbprint))
    return false;
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
  for (const rule of route.deny) if (ruleMatches(rule, facts, nowMs)) return rule.decision;
  if (!route.allow.length) return route.byDefault;
  for (const rule of route.allow) if (ruleMatches(rule, facts, nowMs)) return rule.decision;
  return route.noAllowMatched;
}
