/**
 * Compiling a snapshot's RoutePolicies into the structures the request path
 * reads: route lists already in precedence order, principal sets, expiry
 * instants as numbers. Done once per snapshot, then frozen; nothing here is
 * parsed or allocated per request.
 */
import { BlockList } from 'node:net';
import { parseCidr } from '../../common/policy/cidr.ts';
import { authorizedMethods } from '../../common/policy/methods.ts';
import { compilePrincipals, type PrincipalMatcher } from '../../common/policy/principals.ts';
import type { HeaderMatch, PathMatch, RoutePolicy, Rule } from '../../common/policy/schema.ts';
import { parseBytes, parseDuration } from '../../common/units.ts';
import type { MeshDefault, Snapshot } from '../../common/wire.ts';
import { type CompiledRateLimit, compileRateLimit } from '../rate-limit/limit.ts';
import { type Action, type Decision, decision, type Mode } from './decision.ts';
import { RouteTable } from './route-table.ts';

export interface CompiledRule {
  /** The decision when this entry matches (names the route and the entry, e.g. deny[2]). */
  readonly decision: Decision;
  readonly principals: PrincipalMatcher | undefined;
  /** Required JWT claims ({} for "a verified token"); undefined when the entry asks for no token. */
  readonly jwtClaims: Readonly<Record<string, string>> | undefined;
  /** The token must be bound to the caller's certificate (RFC 8705 cnf.x5t#S256). */
  readonly certificateBound: boolean;
  /** The peer's address must fall in one of these ranges. */
  readonly sourceIPs: BlockList | undefined;
  /** Epoch milliseconds after which the entry no longer matches; Infinity when it never expires. */
  readonly expiresAtMs: number;
}

export type CompiledHeaderMatch =
  | { readonly name: string; readonly kind: 'exact' | 'prefix'; readonly value: string }
  | { readonly name: string; readonly kind: 'present'; readonly present: boolean };

export type CompiledPath =
  | { readonly kind: 'any' }
  | { readonly kind: 'exact'; readonly value: string }
  | { readonly kind: 'prefix'; readonly value: string }
  | { readonly kind: 'template'; readonly segments: readonly (string | null)[] }; // null: a {parameter}

export interface CompiledRoute {
  /** `namespace/name` of the RoutePolicy the route comes from. */
  readonly policy: string;
  readonly name: string;
  readonly mode: Mode;
  readonly methods: ReadonlySet<string> | undefined;
  readonly path: CompiledPath;
  /** Every one must hold; names lower-cased. */
  readonly headers: readonly CompiledHeaderMatch[] | undefined;
  /** Position in precedence order across all routes of the snapshot: lower wins. */
  readonly rank: number;
  readonly deny: readonly CompiledRule[];
  readonly allow: readonly CompiledRule[];
  /** When the route has allow entries and none matched. */
  readonly noAllowMatched: Decision;
  /** When the route has no allow entries (its policy's defaultAction). */
  readonly byDefault: Decision;
  /** Its own rate limit, else its policy's default; every decision of the route carries it too. */
  readonly rateLimit: CompiledRateLimit | undefined;
}

export interface CompiledPolicy {
  readonly version: string;
  /** No RoutePolicy selects this workload: the mesh default decides. */
  readonly unselected: boolean;
  readonly meshDefault: MeshDefault;
  /** Finds the one route that handles a request, by precedence. */
  readonly table: RouteTable;
  /** Lower-case names of every header some route matches on (a request may carry each at most once). */
  readonly matchedHeaders: readonly string[];
  /** For a request no route matches: deny if any selecting policy says deny. */
  readonly noRoute: Decision;
  /** PERMISSIVE only when every selecting policy says so; STRICT otherwise, and when none selects. */
  readonly mtls: 'STRICT' | 'PERMISSIVE';
}

function compileRule(rule: Rule, decided: Decision): CompiledRule {
  return Object.freeze({
    decision: decided,
    principals: rule.principals ? compilePrincipals(rule.principals) : undefined,
    jwtClaims: rule.jwt?.claims
      ? Object.freeze({ ...rule.jwt.claims })
      : rule.jwt
        ? Object.freeze({})
        : undefined,
    certificateBound: rule.jwt?.certificateBound === true,
    sourceIPs: rule.sourceIPs ? compileSourceIPs(rule.sourceIPs) : undefined,
    expiresAtMs: rule.expiresAt ? Date.parse(rule.expiresAt) : Number.POSITIVE_INFINITY,
  });
}

function compileSourceIPs(ranges: readonly string[]): BlockList {
  const list = new BlockList();
  for (const range of ranges) {
    const cidr = parseCidr(range);
    if (!cidr) throw new Error(`invalid source IP range ${JSON.stringify(range)}`);
    list.addSubnet(cidr.address, cidr.prefix, cidr.family);
  }
  return list;
}

function compileHeader(header: HeaderMatch): CompiledHeaderMatch {
  const name = header.name.toLowerCase();
  if (header.exact !== undefined)
    return Object.freeze({ name, kind: 'exact', value: header.exact });
  if (header.prefix !== undefined)
    return Object.freeze({ name, kind: 'prefix', value: header.prefix });
  return Object.freeze({ name, kind: 'present', present: header.present ?? true });
}

const setOf = (methods: readonly string[] | undefined) =>
  methods ? new Set<string>(methods) : undefined;

function compilePath(path: PathMatch | undefined): CompiledPath {
  if (path?.exact !== undefined) return { kind: 'exact', value: path.exact };
  if (path?.template !== undefined) {
    return {
      kind: 'template',
      segments: path.template.split('/').map((s) => (s.startsWith('{') ? null : s)),
    };
  }
  if (path?.prefix !== undefined && path.prefix !== '/') {
    // Prefixes match whole segments; a trailing slash adds nothing to that.
    return { kind: 'prefix', value: path.prefix.replace(/\/+$/, '') };
  }
  return { kind: 'any' };
}

/**
 * Gateway API HTTPRoute precedence: exact path, then template (more literal
 * segments first), then the longest prefix; then the route with a method
 * condition; then more header matches; then file order (a stable sort keeps it).
 */
function precedence(route: Omit<CompiledRoute, 'rank'>): number[] {
  const path = route.path;
  const kindRank = path.kind === 'exact' ? 0 : path.kind === 'template' ? 1 : 2;
  const specificity =
    path.kind === 'exact'
      ? path.value.length
      : path.kind === 'template'
        ? path.segments.filter((s) => s !== null).length * 1000 + path.segments.length
        : path.kind === 'prefix'
          ? path.value.length
          : 0;
  return [kindRank, -specificity, route.methods ? 0 : 1, -(route.headers?.length ?? 0)];
}

function byPrecedence(a: Omit<CompiledRoute, 'rank'>, b: Omit<CompiledRoute, 'rank'>): number {
  const pa = precedence(a);
  const pb = precedence(b);
  for (let i = 0; i < pa.length; i++) if (pa[i] !== pb[i]) return pa[i]! - pb[i]!;
  return 0;
}

/** The route name a limit of requests no route matched goes by (not a DNS label, so no route's). */
export const NO_ROUTE = '(no route)';

const policyId = (policy: RoutePolicy) => `${policy.metadata.namespace}/${policy.metadata.name}`;

export function compilePolicies(
  snapshot: Pick<Snapshot, 'version' | 'meshDefault' | 'policies'>,
): CompiledPolicy {
  const policies = snapshot.policies as readonly RoutePolicy[];
  const routes: Omit<CompiledRoute, 'rank'>[] = [];
  for (const policy of policies) {
    const mode: Mode = policy.spec.mode ?? 'enforce';
    const defaultAction: Action = policy.spec.defaultAction ?? 'deny';
    for (const route of policy.spec.routes) {
      const limit = route.rateLimit ?? policy.spec.rateLimit;
      const template = route.match?.path?.template?.split('/');
      const resourceSegment = template?.findIndex((segment) => segment.startsWith('{'));
      const cap = route.exfiltration?.maxResponseBytes;
      const base = {
        mode,
        policy: policyId(policy),
        route: route.name,
        ...(resourceSegment !== undefined && resourceSegment > 0 ? { resourceSegment } : {}),
        ...(cap && route.exfiltration?.action === 'block'
          ? {
              responseCap: Object.freeze({
                route: `${policyId(policy)}/${route.name}`,
                bytes: parseBytes(cap.bytes),
                perMs: parseDuration(cap.per),
              }),
            }
          : {}),
        ...(limit
          ? { rateLimit: compileRateLimit(limit, policyId(policy), route.name, mode) }
          : {}),
        ...(route.maxRequestBytes ? { maxRequestBytes: parseBytes(route.maxRequestBytes) } : {}),
      };
      const entries = (list: readonly Rule[] | undefined, kind: Action) =>
        Object.freeze(
          (list ?? []).map((rule, i) =>
            compileRule(
              rule,
              decision({
                ...base,
                allowed: kind === 'allow',
                reason: kind === 'allow' ? 'allow-rule-matched' : 'deny-rule-matched',
                rule: `${kind}[${i}]`,
              }),
            ),
          ),
        );
      routes.push({
        policy: base.policy,
        name: route.name,
        mode,
        rateLimit: base.rateLimit,
        methods: setOf(authorizedMethods(route.match?.methods)),
        path: Object.freeze(compilePath(route.match?.path)),
        headers: route.match?.headers
          ? Object.freeze(route.match.headers.map(compileHeader))
          : undefined,
        deny: entries(route.deny, 'deny'),
        allow: entries(route.allow, 'allow'),
        noAllowMatched: decision({
          ...base,
          allowed: false,
          reason: 'no-allow-rule-matched',
          // A caller without a token may yet be admitted by an entry that asks for claims: 401, not 403.
          ...(route.allow?.some((rule) => rule.jwt) ? { tokenRequired: true } : {}),
          // Likewise a token bound to no certificate, or another one, where binding is required (RFC 8705).
          ...(route.allow?.some((rule) => rule.jwt?.certificateBound)
            ? { bindingRequired: true }
            : {}),
        }),
        byDefault: decision({
          ...base,
          allowed: defaultAction === 'allow',
          reason: defaultAction === 'allow' ? 'route-default-allow' : 'route-default-deny',
        }),
      });
    }
  }
  routes.sort(byPrecedence);
  const ranked = routes.map((route, rank): CompiledRoute => Object.freeze({ ...route, rank }));
  // Several policies may select one workload; for a request none of their
  // routes match, the strictest default wins.
  const denying = policies.find((policy) => (policy.spec.defaultAction ?? 'deny') === 'deny');
  const decider = denying ?? policies[0];
  const allowed = decider !== undefined && !denying;
  const noRouteMode: Mode =
    decider && (decider.spec.mode ?? 'enforce') === 'audit' ? 'audit' : 'enforce';
  // What a policy-wide default admits is limited by its policy-wide limit too.
  const noRouteLimit =
    allowed && decider.spec.rateLimit
      ? compileRateLimit(decider.spec.rateLimit, policyId(decider), NO_ROUTE, noRouteMode)
      : undefined;
  return Object.freeze({
    version: snapshot.version,
    unselected: policies.length === 0,
    meshDefault: snapshot.meshDefault,
    table: new RouteTable(ranked),
    matchedHeaders: Object.freeze([
      ...new Set(ranked.flatMap((route) => route.headers?.map((h) => h.name) ?? [])),
    ]),
    mtls:
      policies.length && policies.every((policy) => policy.spec.mtls === 'PERMISSIVE')
        ? 'PERMISSIVE'
        : 'STRICT',
    noRoute: decision({
      allowed,
      reason: allowed ? 'no-route-default-allow' : 'no-route-default-deny',
      mode: noRouteMode,
      ...(decider ? { policy: policyId(decider) } : {}),
      ...(noRouteLimit ? { rateLimit: noRouteLimit } : {}),
    }),
  });
}
