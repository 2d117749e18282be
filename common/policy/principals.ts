/**
 * Principal patterns as RoutePolicies write them ("*", a SPIFFE ID, or a
 * namespace or trust-domain wildcard ending in `/*`), compiled once into a
 * set and a short prefix list. The sidecar matches callers with it per
 * request; the control plane uses it to decide which callers a workload's
 * policies could ever admit (the registry each caller is sent).
 */
export interface PrincipalMatcher {
  /** "*": any authenticated principal. */
  readonly any: boolean;
  readonly exact: ReadonlySet<string>;
  /** Namespace or trust-domain wildcards, stored as the prefix before the `*`. */
  readonly prefixes: readonly string[];
}

export function compilePrincipals(principals: Iterable<string>): PrincipalMatcher {
  const exact = new Set<string>();
  const prefixes: string[] = [];
  let any = false;
  for (const principal of principals) {
    if (principal === '*') any = true;
    else if (principal.endsWith('/*') || principal.endsWith(':*'))
      prefixes.push(principal.slice(0, -1));
    else exact.add(principal);
  }
  return Object.freeze({ any, exact, prefixes: Object.freeze(prefixes) });
}

export function principalMatches(matcher: PrincipalMatcher, principal: string): boolean {
  if (matcher.any || matcher.exact.has(principal)) return true;
  for (const prefix of matcher.prefixes) if (principal.startsWith(prefix)) return true;
  return false;
}

const PRINCIPAL_PATTERNS = [
  /^\*$/,
  /^spiffe:\/\/[a-z0-9.-]+\/\*$/,
  /^spiffe:\/\/[a-z0-9.-]+\/ns\/[a-z0-9-]+\/\*$/,
  /^spiffe:\/\/[a-z0-9.-]+\/ns\/[a-z0-9-]+\/sa\/[a-z0-9.-]+$/, // service accounts are DNS subdomains
  // At the gateway: API-key consumers (DNS subdomain names) and partners' client certificates by CN.
  /^consumer:(\*|[a-z0-9]([-a-z0-9.]*[a-z0-9])?)$/,
  /^cert:(\*|[!-~]([ -~]*[!-~])?)$/,
];

export const PRINCIPAL_PATTERN_HELP =
  '"*", spiffe://<trust-domain>/ns/<namespace>/sa/<service-account>, spiffe://<trust-domain>/ns/<namespace>/*, spiffe://<trust-domain>/*, or at a gateway consumer:<name>, consumer:*, cert:<common name>, cert:*';

/** Whether `text` is a principal pattern a policy (or `--operators`) may name. */
export function isPrincipalPattern(text: string): boolean {
  return PRINCIPAL_PATTERNS.some((pattern) => pattern.test(text));
}
