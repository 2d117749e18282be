/**
 * HTTPRoute validation (`policy validate`, the control plane's folder and,
 * later, the admission webhook): the schema's structure, then what the
 * Gateway API says and a schema cannot, every problem collected and named
 * by file, resource and JSON path, as for RoutePolicies.
 */
import { canonicalTarget } from '../canonical-path.ts';
import { isHopByHop, roleOf } from '../header-roles.ts';
import {
  type CorsPolicy,
  GATEWAY_DURATION_PATTERN,
  gatewayDurationMs,
  type HttpRoute,
  type HttpRouteFilter,
  type HttpRouteRule,
  HttpRouteSchema,
  IDLE_TIMEOUT_ANNOTATION,
  MAX_REQUEST_BYTES_ANNOTATION,
} from './httproute-schema.ts';
import {
  Findings,
  type Problem,
  resourceLabel,
  structuralProblems,
  type ValidationResult,
} from './problems.ts';
import { BYTES_PATTERN } from './schema.ts';

const DURATION = new RegExp(GATEWAY_DURATION_PATTERN);
const BYTES = new RegExp(BYTES_PATTERN);

/** An HTTP field name (RFC 9110 token). */
const TOKEN = /^[!#$%&'*+.^_`|~0-9A-Za-z-]+$/;

/** Each filter type and the one field that configures it. */
const FILTER_FIELDS: Record<HttpRouteFilter['type'], keyof HttpRouteFilter> = {
  RequestHeaderModifier: 'requestHeaderModifier',
  ResponseHeaderModifier: 'responseHeaderModifier',
  URLRewrite: 'urlRewrite',
  RequestRedirect: 'requestRedirect',
  CORS: 'cors',
};

/** A CORS origin: `*`, or scheme://host[:port] where the host may start with `*.`. */
const ORIGIN =
  /^(\*|https?:\/\/(\*\.)?[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*(:[0-9]{1,5})?)$/;

function checkCors(found: Findings, at: string, cors: CorsPolicy): void {
  (cors.allowOrigins ?? []).forEach((origin, o) => {
    if (!ORIGIN.test(origin))
      found.error(
        `${at}.allowOrigins[${o}]`,
        `${JSON.stringify(origin)} is not an origin: "*" or scheme://host[:port], the host may start with "*."`,
      );
  });
  if (cors.allowCredentials && cors.allowOrigins?.includes('*'))
    found.error(
      `${at}.allowCredentials`,
      'browsers refuse credentials for any origin ("*"): name the origins',
    );
  for (const field of ['allowHeaders', 'exposeHeaders'] as const) {
    (cors[field] ?? []).forEach((name, n) => {
      if (name !== '*' && !TOKEN.test(name))
        found.error(`${at}.${field}[${n}]`, `${JSON.stringify(name)} is not a header name`);
    });
  }
}

function checkPathValue(found: Findings, at: string, value: string): void {
  if (!value.startsWith('/')) {
    found.error(at, `expected an absolute path starting with /; found ${JSON.stringify(value)}`);
    return;
  }
  if (/[?#]/.test(value)) {
    found.error(at, `a path has no query or fragment; found ${JSON.stringify(value)}`);
    return;
  }
  const canonical = canonicalTarget(value);
  if (!canonical.ok || canonical.target.path !== value) {
    found.error(
      at,
      `the gateway matches canonical paths (no //, /./ or /../, percent-encoding normalised), so ${JSON.stringify(value)} could never match${canonical.ok ? `; write ${JSON.stringify(canonical.target.path)}` : ''}`,
    );
  }
}

/** Names listed twice in one list (case-insensitively, as HTTP compares them). */
function checkNames(
  found: Findings,
  at: string,
  names: readonly string[],
  what: string,
  caseInsensitive: boolean,
): void {
  const seen = new Map<string, number>();
  names.forEach((name, i) => {
    if (!TOKEN.test(name)) {
      found.error(
        `${at}[${i}].name`,
        `expected an HTTP field name (a token); found ${JSON.stringify(name)}`,
      );
    }
    const key = caseInsensitive ? name.toLowerCase() : name;
    const first = seen.get(key);
    if (first !== undefined) {
      found.error(
        `${at}[${i}].name`,
        `${what} ${JSON.stringify(name)} is matched already by ${at}[${first}]; the Gateway API reads only the first`,
      );
    } else seen.set(key, i);
  });
}

function checkHeaderModifier(
  found: Findings,
  at: string,
  modifier: NonNullable<HttpRouteFilter['requestHeaderModifier']>,
  direction: 'request' | 'response',
): void {
  const named = new Map<string, string>();
  for (const list of ['set', 'add', 'remove'] as const) {
    (modifier[list] ?? []).forEach((item, i) => {
      const name = typeof item === 'string' ? item : item.name;
      const path = `${at}.${list}[${i}]${typeof item === 'string' ? '' : '.name'}`;
      if (!TOKEN.test(name)) {
        found.error(path, `expected an HTTP field name (a token); found ${JSON.stringify(name)}`);
        return;
      }
      const lower = name.toLowerCase();
      const earlier = named.get(lower);
      if (earlier) {
        found.error(
          path,
          `${JSON.stringify(name)} is modified already by ${earlier}; one change per header`,
        );
      } else named.set(lower, path);
      // Framing is the connection's: a changed Content-Length or Transfer-Encoding desyncs it.
      if (lower === 'content-length' || isHopByHop(lower)) {
        found.error(
          path,
          `${JSON.stringify(name)} frames the message or belongs to one connection; a filter cannot change it`,
        );
        return;
      }
      // The gateway states identity and client-address headers itself, after the filters.
      if (direction === 'request' && roleOf(lower)) {
        found.error(
          path,
          `${JSON.stringify(name)} is a header the gateway strips or sets itself; a filter cannot change it`,
        );
      }
    });
  }
}

function checkFilters(found: Findings, at: string, rule: HttpRouteRule): void {
  const filters = rule.filters ?? [];
  const types = new Map<string, number>();
  filters.forEach((filter, f) => {
    const where = `${at}.filters[${f}]`;
    const field = FILTER_FIELDS[filter.type];
    for (const [type, other] of Object.entries(FILTER_FIELDS)) {
      if (other !== field && filter[other] !== undefined) {
        found.error(
          `${where}.${other}`,
          `belongs to a filter of type ${type}; this one is ${filter.type}`,
        );
      }
    }
    const config = filter[field];
    if (config === undefined) {
      found.error(`${where}.${field}`, `is required for a filter of type ${filter.type}`);
      return;
    }
    const first = types.get(filter.type);
    if (first !== undefined) {
      found.error(
        where,
        `a rule takes one ${filter.type} filter; ${at}.filters[${first}] is one already`,
      );
    } else types.set(filter.type, f);
    if (filter.type === 'RequestHeaderModifier' || filter.type === 'ResponseHeaderModifier') {
      checkHeaderModifier(
        found,
        `${where}.${field}`,
        config as NonNullable<HttpRouteFilter['requestHeaderModifier']>,
        filter.type === 'RequestHeaderModifier' ? 'request' : 'response',
      );
    }
    if (filter.type === 'CORS') checkCors(found, `${where}.cors`, config as CorsPolicy);
    const path = (filter.urlRewrite ?? filter.requestRedirect)?.path;
    if (path) checkPathModifier(found, `${where}.${field}.path`, path, rule);
  });
  if (types.has('URLRewrite') && types.has('RequestRedirect')) {
    found.error(
      `${at}.filters`,
      'a rule either rewrites and forwards (URLRewrite) or redirects (RequestRedirect), not both',
    );
  }
  if (types.has('RequestRedirect') && rule.backendRefs?.length) {
    found.warn(`${at}.backendRefs`, 'the rule redirects: its backends are never called');
  }
}

function checkPathModifier(
  found: Findings,
  at: string,
  path: NonNullable<NonNullable<HttpRouteFilter['urlRewrite']>['path']>,
  rule: HttpRouteRule,
): void {
  const field = path.type === 'ReplaceFullPath' ? 'replaceFullPath' : 'replacePrefixMatch';
  const other = path.type === 'ReplaceFullPath' ? 'replacePrefixMatch' : 'replaceFullPath';
  if (path[other] !== undefined)
    found.error(
      `${at}.${other}`,
      `belongs to type ${other === 'replaceFullPath' ? 'ReplaceFullPath' : 'ReplacePrefixMatch'}; this one is ${path.type}`,
    );
  const value = path[field];
  if (value === undefined) {
    found.error(`${at}.${field}`, `is required for type ${path.type}`);
    return;
  }
  checkPathValue(found, `${at}.${field}`, value);
  if (path.type === 'ReplacePrefixMatch') {
    const matches = rule.matches ?? [];
    if (!matches.length || matches.some((m) => (m.path?.type ?? 'PathPrefix') !== 'PathPrefix')) {
      found.error(
        `${at}.type`,
        'ReplacePrefixMatch replaces the prefix a PathPrefix match matched: every match of the rule must be a PathPrefix',
      );
    }
  }
}

function checkRule(found: Findings, at: string, rule: HttpRouteRule, namespace: string): void {
  (rule.backendRefs ?? []).forEach((ref, b) => {
    if (ref.namespace !== undefined && ref.namespace !== namespace)
      found.error(
        `${at}.backendRefs[${b}].namespace`,
        `${ref.namespace} is not the route's namespace (${namespace}): a backend in another namespace needs a ReferenceGrant, which Postern does not read`,
      );
  });
  (rule.matches ?? []).forEach((match, m) => {
    const where = `${at}.matches[${m}]`;
    if (match.path?.value !== undefined)
      checkPathValue(found, `${where}.path.value`, match.path.value);
    if (match.headers) {
      checkNames(
        found,
        `${where}.headers`,
        match.headers.map((h) => h.name),
        'header',
        true,
      );
    }
    if (match.queryParams) {
      checkNames(
        found,
        `${where}.queryParams`,
        match.queryParams.map((q) => q.name),
        'query parameter',
        false,
      );
    }
  });
  checkFilters(found, at, rule);
  const { request, backendRequest } = rule.timeouts ?? {};
  if (
    request !== undefined &&
    backendRequest !== undefined &&
    gatewayDurationMs(request) !== 0 &&
    gatewayDurationMs(backendRequest) > gatewayDurationMs(request)
  ) {
    found.error(
      `${at}.timeouts.backendRequest`,
      `must not be longer than timeouts.request (${request}): each attempt is part of the request`,
    );
  }
  const redirects = rule.filters?.some((f) => f.type === 'RequestRedirect');
  if (!redirects) {
    const backends = rule.backendRefs ?? [];
    if (!backends.length) {
      found.warn(
        `${at}.backendRefs`,
        'no backend: requests this rule matches get 500, as the Gateway API says',
      );
    } else if (backends.every((b) => b.weight === 0)) {
      found.warn(
        `${at}.backendRefs`,
        'every backend has weight 0: requests this rule matches get 500',
      );
    }
  }
}

/**
 * Structure and semantics of one HTTPRoute document; the route (metadata
 * namespace defaulted as kubectl does) only when there is no error.
 */
export function validateHttpRoute(
  doc: unknown,
  fallbackLabel: string,
): ValidationResult & { route?: HttpRoute } {
  const resource = resourceLabel(doc, fallbackLabel, 'HTTPRoute');
  const found = new Findings(resource);
  const structural: Problem[] = structuralProblems(HttpRouteSchema, doc, resource);
  found.errors.push(...structural);
  // The rules the schema found sound are checked further, whatever is wrong
  // elsewhere: every error at once, not one round per fix.
  const sound = (prefix: string) =>
    !structural.some(
      (p) =>
        p.path === prefix || p.path.startsWith(`${prefix}.`) || p.path.startsWith(`${prefix}[`),
    );
  const spec = (doc as { spec?: Partial<HttpRoute['spec']> } | null)?.spec;
  const hostnames = sound('spec.hostnames') && Array.isArray(spec?.hostnames) ? spec.hostnames : [];
  hostnames.forEach((hostname, h) => {
    const first = hostnames.indexOf(hostname);
    if (first !== h) found.warn(`spec.hostnames[${h}]`, `repeats spec.hostnames[${first}]`);
  });
  const annotations = (doc as { metadata?: { annotations?: Record<string, unknown> } } | null)
    ?.metadata?.annotations;
  const idle = annotations?.[IDLE_TIMEOUT_ANNOTATION];
  if (idle !== undefined && (typeof idle !== 'string' || !DURATION.test(idle)))
    found.error(
      `metadata.annotations.${IDLE_TIMEOUT_ANNOTATION}`,
      `${JSON.stringify(idle)} is not a Gateway API duration such as 30s, 5m or 1m30s`,
    );
  const maxBytes = annotations?.[MAX_REQUEST_BYTES_ANNOTATION];
  if (maxBytes !== undefined && (typeof maxBytes !== 'string' || !BYTES.test(maxBytes)))
    found.error(
      `metadata.annotations.${MAX_REQUEST_BYTES_ANNOTATION}`,
      `${JSON.stringify(maxBytes)} is not a size such as 512, 64Ki, 10Mi or 1Gi`,
    );
  const rules = Array.isArray(spec?.rules) ? spec.rules : [];
  const namespace =
    (doc as { metadata?: { namespace?: unknown } } | null)?.metadata?.namespace ?? 'default';
  rules.forEach((rule, r) => {
    if (sound(`spec.rules[${r}]`)) checkRule(found, `spec.rules[${r}]`, rule, String(namespace));
  });
  if (found.errors.length) return { errors: found.errors, warnings: found.warnings };
  const route = doc as HttpRoute;
  return {
    errors: found.errors,
    warnings: found.warnings,
    route: {
      ...route,
      metadata: { ...route.metadata, namespace: route.metadata.namespace ?? 'default' },
    },
  };
}
