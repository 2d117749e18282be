/**
 * RoutePolicy validation: structure from the schema, then the semantic rules a
 * schema cannot say. Every problem is collected (a platform engineer fixes a
 * file once, not once per error), each naming the resource and JSON path and
 * saying what was expected and what was found.
 */
import { canonicalTarget } from '../canonical-path.ts';
import { roleOf } from '../header-roles.ts';
import { parseCidr } from './cidr.ts';
import { authorizedMethods } from './methods.ts';
import { isPrincipalPattern, PRINCIPAL_PATTERN_HELP } from './principals.ts';
import {
  exactlyOne,
  Findings,
  type Problem,
  resourceLabel,
  structuralProblems,
  type ValidationResult,
} from './problems.ts';
import {
  HTTP_METHODS,
  type JwtProvider,
  type PathMatch,
  type RateLimit,
  type Route,
  type RoutePolicy,
  RoutePolicySchema,
  type Rule,
} from './schema.ts';

/**
 * A route may match only on a header the app receives as the client sent
 * it: not one the sidecar strips or restates (common/header-roles.ts), and
 * not a name with `_`, which CGI-style apps read as its `-` twin.
 */
function checkHeaderName(found: Findings, at: string, name: string): void {
  if (name.includes('_')) {
    found.error(
      at,
      `${JSON.stringify(name)} has an underscore; CGI-style apps read it and its - spelling as one header, so match ${JSON.stringify(name.replaceAll('_', '-'))}`,
    );
    return;
  }
  const lower = name.toLowerCase();
  const role = roleOf(lower);
  if (role === 'client-address') {
    found.error(
      at,
      `${JSON.stringify(name)} is restated by the sidecar with the caller's address; a client's copy cannot be matched (use sourceIPs on an entry)`,
    );
  } else if (role || lower.startsWith('proxy-')) {
    found.error(
      at,
      `${JSON.stringify(name)} is a header the sidecar strips or sets itself; a client's copy cannot be matched`,
    );
  }
}

const TEMPLATE_SEGMENT = /^(\{[A-Za-z_][A-Za-z0-9_]*\}|[^{}]*)$/;

function checkPath(found: Findings, at: string, path: PathMatch): void {
  for (const kind of exactlyOne(found, at, path, [
    'exact',
    'prefix',
    'template',
  ]) as (keyof PathMatch)[]) {
    const value = path[kind]!;
    if (!value.startsWith('/')) {
      found.error(
        `${at}.${kind}`,
        `expected a path starting with /; found ${JSON.stringify(value)}`,
      );
      continue;
    }
    // The sidecar matches canonical paths only: a policy path that is not
    // canonical would silently never match.
    if (kind !== 'template' && /[{}]/.test(value)) {
      found.error(
        `${at}.${kind}`,
        `{parameters} only work in a template path; write template: ${JSON.stringify(value)}`,
      );
      continue;
    }
    // Template parameters stand in as one plain segment each.
    const literal = kind === 'template' ? value.replace(/\{[^}]*\}/g, 'p') : value;
    const canonical = canonicalTarget(literal);
    const trim = (path: string) => (kind === 'prefix' ? path.replace(/(.)\/+$/, '$1') : path);
    if (
      !canonical.ok ||
      canonical.target.search !== '' ||
      trim(canonical.target.path) !== trim(literal)
    ) {
      found.error(
        `${at}.${kind}`,
        canonical.ok && canonical.target.search === ''
          ? `expected a canonical path (requests are matched after canonicalisation); write ${JSON.stringify(canonical.target.path)}`
          : `expected a canonical path; ${canonical.ok ? 'a path match has no query' : canonical.reason}`,
      );
      continue;
    }
    if (kind !== 'template') continue;
    const params = new Set<string>();
    for (const segment of value.split('/').slice(1)) {
      if (!TEMPLATE_SEGMENT.test(segment)) {
        found.error(
          `${at}.template`,
          `a parameter must be a whole segment such as {id}; found ${JSON.stringify(segment)}`,
        );
      } else if (segment.startsWith('{')) {
        if (params.has(segment))
          found.error(`${at}.template`, `parameter ${segment} appears twice`);
        params.add(segment);
      }
    }
  }
}

function checkRule(found: Findings, at: string, rule: Rule, now: Date): void {
  if (rule.principals === undefined && rule.jwt === undefined && rule.sourceIPs === undefined) {
    found.error(
      at,
      'an entry needs at least one condition (principals, jwt or sourceIPs); to match any authenticated caller write principals: ["*"]',
    );
  }
  rule.principals?.forEach((principal, p) => {
    if (!isPrincipalPattern(principal)) {
      found.error(
        `${at}.principals[${p}]`,
        `expected ${PRINCIPAL_PATTERN_HELP}; found ${JSON.stringify(principal)}`,
      );
    }
  });
  rule.sourceIPs?.forEach((cidr, c) => {
    if (!parseCidr(cidr)) {
      found.error(
        `${at}.sourceIPs[${c}]`,
        `expected an IP address or CIDR range such as 10.0.0.0/8 or fd00::/8; found ${JSON.stringify(cidr)}`,
      );
    }
  });
  if (rule.expiresAt !== undefined && Date.parse(rule.expiresAt) <= now.getTime()) {
    found.warn(`${at}.expiresAt`, `${rule.expiresAt} is already past; this entry never matches`);
  }
}

/** The path-match identity two routes share when one can never be chosen over the other. */
function pathKey(route: Route): string {
  const path = route.match?.path;
  if (!path || (path.prefix !== undefined && /^\/+$/.test(path.prefix))) return 'prefix:/';
  if (path.exact !== undefined) return `exact:${path.exact}`;
  if (path.template !== undefined) return `template:${path.template.replace(/\{[^}]*\}/g, '{}')}`;
  return `prefix:${path.prefix!.replace(/\/+$/, '')}`;
}

function headersKey(route: Route): string {
  return JSON.stringify(
    (route.match?.headers ?? [])
      .map((h) => [h.name.toLowerCase(), h.exact, h.prefix, h.present])
      .sort(),
  );
}

/**
 * Warns about a route that an earlier one always wins over: the same path
 * match and headers, and the earlier one takes every method the later one
 * does (a GET route takes HEAD too).
 */
function checkShadowing(
  found: Findings,
  routes: readonly Route[],
  sound: (r: number) => boolean,
): void {
  routes.forEach((later, l) => {
    if (!sound(l)) return;
    for (let e = 0; e < l; e++) {
      const earlier = routes[e]!;
      if (
        !sound(e) ||
        pathKey(earlier) !== pathKey(later) ||
        headersKey(earlier) !== headersKey(later)
      )
        continue;
      const earlierMethods = authorizedMethods(earlier.match?.methods);
      const laterMethods = authorizedMethods(later.match?.methods);
      // A route with methods outranks one without, so only an earlier route
      // with the same (or no) method condition covers the later one.
      const covered =
        earlierMethods && laterMethods
          ? laterMethods.every((m) => earlierMethods.includes(m))
          : !earlierMethods && !laterMethods;
      if (covered) {
        found.warn(
          `spec.routes[${l}]`,
          `route ${JSON.stringify(later.name)} can never be chosen: spec.routes[${e}] (${JSON.stringify(earlier.name)}) matches every request it would`,
        );
        return;
      }
    }
  });
}

interface PathScope {
  readonly path: string;
  readonly subtree: boolean;
}

/** The literal path a route's match starts with, and whether it covers everything below it. */
function pathScope(route: Route): PathScope {
  const path = route.match?.path;
  if (!path) return { path: '', subtree: true };
  if (path.exact !== undefined) return { path: path.exact, subtree: false };
  if (path.prefix !== undefined) return { path: path.prefix.replace(/\/+$/, ''), subtree: true };
  return { path: path.template!.replace(/\/\{.*$/, ''), subtree: false };
}

/** Whether every path in `inner` is in `outer`'s subtree (a prefix covers itself). */
function inSubtree(outer: PathScope, inner: PathScope): boolean {
  return outer.subtree && (inner.path === outer.path || inner.path.startsWith(`${outer.path}/`));
}

/**
 * Deny entries only apply on their own route. Warns where a more specific
 * route takes requests from under a prefix route that denies, and where an
 * exact path with deny entries leaves its trailing-slash twin to another
 * route (apps that route /x/ like /x would serve it).
 */
function checkDenyCoverage(
  found: Findings,
  routes: readonly Route[],
  sound: (r: number) => boolean,
): void {
  routes.forEach((denying, d) => {
    if (!sound(d) || !denying.deny) return;
    const scope = pathScope(denying);
    if (denying.match?.path?.exact !== undefined && !denying.match.path.exact.endsWith('/')) {
      found.warn(
        `spec.routes[${d}].match.path.exact`,
        `deny entries on exact ${JSON.stringify(scope.path)} do not cover ${JSON.stringify(`${scope.path}/`)}; if the app serves both, deny on a prefix`,
      );
    }
    if (!scope.subtree) return;
    routes.forEach((other, o) => {
      if (o === d || !sound(o) || !other.allow) return;
      const inner = pathScope(other);
      // The same prefix is the same scope, not a more specific one under it.
      if (inSubtree(scope, inner) && !(inner.subtree && inner.path === scope.path)) {
        found.warn(
          `spec.routes[${o}]`,
          `route ${JSON.stringify(other.name)} takes requests under ${JSON.stringify(scope.path || '/')} away from route ${JSON.stringify(denying.name)}, whose deny entries do not apply to them`,
        );
      }
    });
  });
}

/** The path a route's match names, as written. */
function pathText(route: Route): string {
  const path = route.match?.path;
  return path?.exact ?? path?.prefix ?? path?.template ?? '/';
}

/**
 * The routes that match every path route `r` does, in the order the sidecar
 * prefers them. They all match the same paths, so of the Gateway API
 * precedence only this can differ: exact, template, longer prefix; then a
 * method condition; then more header matches; then file order.
 */
function broaderRoutes(
  routes: readonly Route[],
  r: number,
  sound: (r: number) => boolean,
): number[] {
  const scope = pathScope(routes[r]!);
  const covering: { index: number; rank: number[] }[] = [];
  routes.forEach((route, o) => {
    if (o === r || !sound(o)) return;
    if (pathKey(route) !== pathKey(routes[r]!) && !inSubtree(pathScope(route), scope)) return;
    const path = route.match?.path;
    const kind = path?.exact !== undefined ? 0 : path?.template !== undefined ? 1 : 2;
    const methods = route.match?.methods ? 0 : 1;
    const headers = route.match?.headers?.length ?? 0;
    covering.push({ index: o, rank: [kind, -pathScope(route).path.length, methods, -headers, o] });
  });
  const byRank = (a: number[], b: number[]) => {
    const i = a.findIndex((v, k) => v !== b[k]);
    return i === -1 ? 0 : a[i]! - b[i]!;
  };
  return covering.sort((a, b) => byRank(a.rank, b.rank)).map((c) => c.index);
}

/** Whether a route lets through a request its deny entries do not stop. */
function letsThrough(route: Route, defaultAction: unknown): boolean {
  return route.allow !== undefined || defaultAction === 'allow';
}

const ruleKey = (rule: Rule) =>
  JSON.stringify([
    rule.principals,
    rule.jwt && Object.entries(rule.jwt.claims ?? {}).sort(),
    rule.sourceIPs,
    rule.expiresAt,
  ]);

/**
 * Whether `outer` denies every caller `inner` denies: each of inner's entries
 * is also one of outer's, or outer has a bare `principals: ["*"]` and the
 * entry needs a principal anyway.
 */
function deniesToo(outer: Route, inner: Route): boolean {
  const keys = new Set(outer.deny?.map(ruleKey));
  const denyAll = outer.deny?.some(
    (rule) => Object.keys(rule).length === 1 && rule.principals?.join() === '*',
  );
  return (inner.deny ?? []).every(
    (rule) => keys.has(ruleKey(rule)) || (denyAll && rule.principals !== undefined),
  );
}

/**
 * A deny route with a method condition denies only those methods: requests
 * with other methods on its paths go to the next route that takes them, or
 * to defaultAction when none does. Warns where that lets them through.
 */
function checkMethodFallThrough(
  found: Findings,
  routes: readonly Route[],
  sound: (r: number) => boolean,
  defaultAction: unknown,
): void {
  routes.forEach((denying, d) => {
    const denied = authorizedMethods(denying.match?.methods);
    if (!sound(d) || !denying.deny || !denied) return;
    const others = HTTP_METHODS.filter((m) => !denied.includes(m));
    let remaining = others;
    const named = (methods: readonly string[]) =>
      methods.length === others.length ? 'other methods' : methods.join(', ');
    const warn = (what: string) =>
      found.warn(
        `spec.routes[${d}].match.methods`,
        `route ${JSON.stringify(denying.name)} denies only ${denied.join(', ')} on ${JSON.stringify(pathText(denying))}; ${what}`,
      );
    for (const b of broaderRoutes(routes, d, sound)) {
      const broader = routes[b]!;
      const takes = authorizedMethods(broader.match?.methods);
      const taken = takes ? remaining.filter((m) => takes.includes(m)) : remaining;
      if (!taken.length) continue;
      if (letsThrough(broader, defaultAction) && !deniesToo(broader, denying)) {
        warn(
          `${named(taken)} there fall through to spec.routes[${b}] (${JSON.stringify(broader.name)}), which allows them`,
        );
      }
      // A route with header matches takes only the requests that carry them.
      if (!broader.match?.headers) remaining = remaining.filter((m) => !taken.includes(m));
      if (!remaining.length) return;
    }
    if (defaultAction === 'allow') {
      warn(`${named(remaining)} there match no route, and defaultAction: allow lets them through`);
    }
  });
}

/**
 * What the schema cannot say about JWT providers: a key set fetched over
 * plain HTTP could be swapped by anyone on the path, so only loopback (local
 * development, tests) may use http://; an inline key set is public keys
 * only; a token is matched to its provider by `iss`, so two providers with
 * one issuer would be ambiguous; and the headers a provider reads tokens
 * from or writes claims to must be ones the sidecar may take or set.
 * Returns the claim headers, lower case, for the routes' checks.
 */
function checkJwtProviders(
  found: Findings,
  providers: readonly JwtProvider[],
  structural: readonly Problem[],
): ReadonlySet<string> {
  const issuers = new Map<string, number>();
  const claimHeaders = new Map<string, string>();
  providers.forEach((provider, p) => {
    const at = `spec.jwt[${p}]`;
    const sound = (field: string) =>
      !structural.some(
        (problem) =>
          problem.path === at ||
          problem.path === `${at}.${field}` ||
          problem.path.startsWith(`${at}.${field}[`) ||
          problem.path.startsWith(`${at}.${field}.`),
      );
    if (typeof provider !== 'object' || provider === null) return;
    if (structural.some((problem) => problem.path === at)) return;
    exactlyOne(found, at, provider, ['jwksUri', 'jwks']);
    if (sound('jwksUri') && typeof provider.jwksUri === 'string') {
      checkJwksUri(found, `${at}.jwksUri`, provider.jwksUri);
    }
    if (sound('jwks') && provider.jwks)
      checkInlineKeys(found, `${at}.jwks.keys`, provider.jwks.keys);
    if (sound('fromHeaders')) {
      provider.fromHeaders?.forEach((source, h) => {
        const name = source.name.toLowerCase();
        if (UNTAKEABLE.has(name) || roleOf(name) || name.includes('_')) {
          found.error(
            `${at}.fromHeaders[${h}].name`,
            `${JSON.stringify(source.name)} cannot carry a token: the sidecar needs it, sets it or strips it${name === 'cookie' ? ' (use fromCookies)' : ''}`,
          );
        }
      });
    }
    if (sound('outputClaimToHeaders')) {
      provider.outputClaimToHeaders?.forEach((output, o) => {
        const where = `${at}.outputClaimToHeaders[${o}].header`;
        const name = output.header.toLowerCase();
        const role = roleOf(name);
        if (
          UNTAKEABLE.has(name) ||
          name === 'authorization' ||
          name.includes('_') ||
          (role && (role !== 'sidecar' || SIDECAR_SET.has(name)))
        ) {
          found.error(
            where,
            `${JSON.stringify(output.header)} cannot carry a claim: the sidecar needs it or sets it itself`,
          );
        } else if (provider.fromHeaders?.some((source) => source.name.toLowerCase() === name)) {
          found.error(
            where,
            `${JSON.stringify(output.header)} is where this provider reads tokens`,
          );
        } else {
          const claim = claimHeaders.get(name);
          if (claim !== undefined && claim !== output.claim) {
            found.error(
              where,
              `${JSON.stringify(output.header)} already carries the claim ${JSON.stringify(claim)}`,
            );
          } else claimHeaders.set(name, output.claim);
        }
      });
    }
    if (!sound('issuer') || typeof provider.issuer !== 'string') return;
    const first = issuers.get(provider.issuer);
    if (first !== undefined) {
      found.error(
        `${at}.issuer`,
        `duplicates the issuer of spec.jwt[${first}] (${JSON.stringify(provider.issuer)}): tokens are matched to a provider by iss`,
      );
    } else issuers.set(provider.issuer, p);
  });
  return new Set(claimHeaders.keys());
}

/** Headers that route or frame the request, or hold many values: never a token's or a claim's. */
const UNTAKEABLE: ReadonlySet<string> = new Set([
  'host',
  'content-length',
  'content-type',
  'cookie',
]);
/** Owned headers the sidecar sets itself (other x-postern-* names may carry claims). */
const SIDECAR_SET: ReadonlySet<string> = new Set([
  'x-forwarded-client-cert',
  'x-forwarded-proto',
  'x-postern-principal',
  'x-postern-audit',
]);

function checkJwksUri(found: Findings, at: string, uri: string): void {
  let url: URL | undefined;
  try {
    url = new URL(uri);
  } catch {
    found.error(at, `expected a URL; found ${JSON.stringify(uri)}`);
  }
  if (url?.protocol === 'http:' && !isLoopbackHost(url.hostname)) {
    found.error(
      at,
      `must be https:// (http:// only on a loopback address); found ${JSON.stringify(uri)}`,
    );
  }
}

/** Public signing keys only: a private or symmetric key in a policy is a leaked secret. */
function checkInlineKeys(
  found: Findings,
  at: string,
  keys: readonly Record<string, unknown>[],
): void {
  keys.forEach((key, k) => {
    if ('d' in key || key.kty === 'oct') {
      found.error(
        `${at}[${k}]`,
        'is a private or symmetric key: a policy may hold public keys only (remove it and rotate it at the provider)',
      );
    } else if (key.kty !== 'RSA' && key.kty !== 'EC' && key.kty !== 'OKP') {
      found.error(`${at}[${k}].kty`, `expected RSA, EC or OKP; found ${JSON.stringify(key.kty)}`);
    } else if (key.use !== undefined && key.use !== 'sig') {
      found.error(`${at}[${k}].use`, `expected sig; found ${JSON.stringify(key.use)}`);
    }
  });
}

/** What a rate limit's schema cannot say: keys that leave callers sharing a bucket, settings that do nothing. */
function checkRateLimit(
  found: Findings,
  at: string,
  limit: RateLimit,
  hasProviders: boolean,
): void {
  const key = limit.key ?? 'principal';
  if ((key === 'subject' || key.startsWith('claim:')) && !hasProviders) {
    found.warn(
      `${at}.key`,
      `this policy names no JWT provider (spec.jwt): callers without a token another policy verifies share one ${key} bucket`,
    );
  }
  if (key === 'consumer') {
    found.warn(
      `${at}.key`,
      "consumers are API-key holders at postern gateway; on a sidecar every caller shares the one bucket of 'no consumer'",
    );
  }
  if (limit.failureMode && (limit.scope ?? 'local') === 'local') {
    found.warn(
      `${at}.failureMode`,
      'applies to global limits only (Redis unreachable); a local limit never fails',
    );
  }
}

function isLoopbackHost(hostname: string): boolean {
  const host = hostname.replace(/^\[|\]$/g, '');
  return host === 'localhost' || host === '::1' || /^127\.\d+\.\d+\.\d+$/.test(host);
}

/**
 * The rules a schema cannot say. They run on every route that is
 * structurally sound, even when other parts of the document are not, so that
 * one run reports every problem.
 */
function semanticProblems(
  doc: unknown,
  found: Findings,
  structural: readonly Problem[],
  now: Date,
  lintUpTo: number,
): void {
  const routes = (doc as { spec?: { routes?: unknown } } | null)?.spec?.routes;
  if (!Array.isArray(routes)) return;
  const sound = (r: number) =>
    !structural.some(
      (p) =>
        p.path === `spec.routes[${r}]` ||
        p.path.startsWith(`spec.routes[${r}].`) ||
        p.path.startsWith(`spec.routes[${r}][`),
    );
  const providers = (doc as { spec?: { jwt?: unknown } }).spec?.jwt;
  const claimHeaders = Array.isArray(providers)
    ? checkJwtProviders(found, providers as JwtProvider[], structural)
    : new Set<string>();
  const hasProviders = Array.isArray(providers) && providers.length > 0;
  const policyLimit = (doc as { spec?: { rateLimit?: RateLimit } }).spec?.rateLimit;
  const limitSound = !structural.some((p) => p.path.startsWith('spec.rateLimit'));
  if (policyLimit && limitSound) checkRateLimit(found, 'spec.rateLimit', policyLimit, hasProviders);
  const names = new Map<string, number>();
  (routes as Route[]).forEach((route, r) => {
    const at = `spec.routes[${r}]`;
    // Names are checked on every route whose name is a string, sound or not:
    // all errors at once means a bad method in one route does not hide a
    // name another repeats.
    const name = (route as { name?: unknown } | null)?.name;
    if (typeof name === 'string') {
      const first = names.get(name);
      if (first !== undefined) {
        found.error(
          `${at}.name`,
          `duplicates the name of spec.routes[${first}] (${JSON.stringify(name)})`,
        );
      } else names.set(name, r);
    }
    if (!sound(r)) return;
    if (route.match?.path) checkPath(found, `${at}.match.path`, route.match.path);
    if (route.rateLimit) checkRateLimit(found, `${at}.rateLimit`, route.rateLimit, hasProviders);
    route.match?.headers?.forEach((header, h) => {
      exactlyOne(found, `${at}.match.headers[${h}]`, header, ['exact', 'prefix', 'present']);
      checkHeaderName(found, `${at}.match.headers[${h}].name`, header.name);
      if (claimHeaders.has(header.name.toLowerCase())) {
        found.error(
          `${at}.match.headers[${h}].name`,
          `${JSON.stringify(header.name)} carries a verified claim (spec.jwt outputClaimToHeaders); match the claim in an entry's jwt.claims instead`,
        );
      }
    });
    for (const list of ['allow', 'deny'] as const) {
      route[list]?.forEach((rule, i) => {
        checkRule(found, `${at}.${list}[${i}]`, rule, now);
        if (rule.jwt && !hasProviders) {
          found.warn(
            `${at}.${list}[${i}].jwt`,
            'this policy names no JWT provider (spec.jwt): the claims hold only for tokens of an issuer another policy selecting the same workloads accepts',
          );
        }
      });
    }
  });
  // Route against route, so quadratic (18 s at 10,000 routes), and only ever warnings.
  if (routes.length > lintUpTo) {
    if (lintUpTo > 0) {
      found.warn(
        'spec.routes',
        `${routes.length} routes: the checks for shadowed routes and uncovered denies were skipped (they compare every route with every other); run postern policy validate on the file for them`,
      );
    }
    return;
  }
  checkShadowing(found, routes as Route[], sound);
  checkDenyCoverage(found, routes as Route[], sound);
  const defaultAction = (doc as { spec?: { defaultAction?: unknown } }).spec?.defaultAction;
  checkMethodFallThrough(found, routes as Route[], sound, defaultAction);
}

/** Route count up to which the control plane runs the pairwise checks (~0.2 s at 1,000 routes). */
export const LINT_ROUTE_LIMIT = 1_000;

/**
 * Validates one parsed document. Returns the typed policy (with
 * metadata.namespace defaulted as kubectl does) only when there is no error.
 * `lintUpTo` bounds the checks that compare routes pairwise (shadowed
 * routes, denies a broader route lets through): they only warn and cost the
 * square of the route count, so a policy with more routes skips them (with a
 * warning unless the bound is 0). `policy validate` runs them all; the
 * control plane up to LINT_ROUTE_LIMIT routes; a sidecar applying a snapshot
 * on its event loop needs the errors alone (0).
 */
export function validateRoutePolicy(
  doc: unknown,
  fallbackLabel: string,
  now = new Date(),
  { lintUpTo = Number.POSITIVE_INFINITY }: { readonly lintUpTo?: number } = {},
): ValidationResult & { policy?: RoutePolicy } {
  const resource = resourceLabel(doc, fallbackLabel);
  const found = new Findings(resource);
  const structural = structuralProblems(RoutePolicySchema, doc, resource);
  found.errors.push(...structural);
  semanticProblems(doc, found, structural, now, lintUpTo);
  const result = { errors: found.errors, warnings: found.warnings };
  if (result.errors.length) return result;
  const typed = doc as RoutePolicy;
  const policy: RoutePolicy = {
    ...typed,
    metadata: { ...typed.metadata, namespace: typed.metadata.namespace ?? 'default' },
  };
  return { ...result, policy };
}
