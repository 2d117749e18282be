/**
 * What an HTTPRoute rule does to a request once it matched, as pure
 * functions of the compiled match and the request (the gateway's glue calls
 * them): which backend of a weighted list, the rewritten path and host
 * (URLRewrite), the redirect (RequestRedirect) and the header changes
 * (Request/ResponseHeaderModifier), per the Gateway API.
 */
import type { HttpRouteFilter } from '../../common/policy/httproute-schema.ts';
import type { CompiledBackend, CompiledMatch } from './http-route-table.ts';

/**
 * A backend drawn by weight (a 90/10 split sends about 90% to the first);
 * undefined when there is none or every weight is 0: the Gateway API says
 * such a request gets 500.
 */
export function pickBackend(
  backends: readonly CompiledBackend[],
  random: () => number = Math.random,
): CompiledBackend | undefined {
  let total = 0;
  for (const backend of backends) total += backend.weight;
  if (total <= 0) return undefined;
  let point = random() * total;
  for (const backend of backends) {
    point -= backend.weight;
    if (point < 0) return backend;
  }
  return backends.at(-1);
}

type PathModifier = NonNullable<NonNullable<HttpRouteFilter['urlRewrite']>['path']>;

/**
 * The path after a path modifier: ReplaceFullPath replaces all of it;
 * ReplacePrefixMatch replaces the part the rule's PathPrefix matched,
 * keeping what follows on a segment boundary (/api/x with prefix /api and
 * replacement /v2 is /v2/x; with replacement / it is /x).
 */
export function modifiedPath(match: CompiledMatch, modifier: PathModifier, path: string): string {
  if (modifier.type === 'ReplaceFullPath') return modifier.replaceFullPath!;
  const prefix = match.path.endsWith('/') ? match.path.slice(0, -1) : match.path;
  const rest = path.slice(prefix.length);
  const replacement = modifier.replacePrefixMatch!;
  if (replacement === '/' || replacement === '') return rest.startsWith('/') ? rest : `/${rest}`;
  const base = replacement.endsWith('/') ? replacement.slice(0, -1) : replacement;
  return `${base}${rest}`;
}

/** The request's path and host as the backend receives them after the rule's URLRewrite (unchanged without one). */
export function rewrite(
  match: CompiledMatch,
  path: string,
  host: string,
): { readonly path: string; readonly host: string } {
  const filter = match.filters.find((f) => f.type === 'URLRewrite')?.urlRewrite;
  if (!filter) return { path, host };
  return {
    path: filter.path ? modifiedPath(match, filter.path, path) : path,
    host: filter.hostname ?? host,
  };
}

/**
 * The redirect the rule answers with, if it has a RequestRedirect: status
 * (302 unless it says 301) and Location, each part the filter leaves out
 * taken from the request (the port only when it is not the scheme's).
 */
export function redirect(
  match: CompiledMatch,
  request: {
    readonly scheme: 'http' | 'https';
    readonly host: string;
    readonly port: number;
    readonly path: string;
    readonly search: string;
  },
): { readonly status: number; readonly location: string } | undefined {
  const filter = match.filters.find((f) => f.type === 'RequestRedirect')?.requestRedirect;
  if (!filter) return undefined;
  const scheme = filter.scheme ?? request.scheme;
  const host = filter.hostname ?? request.host;
  // A redirect that names a scheme and no port goes to that scheme's well-known port; one
  // that names neither keeps the listener's (Gateway API, HTTPRequestRedirectFilter.port).
  const port = filter.port ?? (filter.scheme ? undefined : request.port);
  const standard = scheme === 'https' ? 443 : 80;
  const path = filter.path ? modifiedPath(match, filter.path, request.path) : request.path;
  return {
    status: filter.statusCode ?? 302,
    location: `${scheme}://${host}${port === undefined || port === standard ? '' : `:${port}`}${path}${request.search}`,
  };
}

type HeaderModifier = NonNullable<HttpRouteFilter['requestHeaderModifier']>;

/** The same modifier applied to an IncomingMessage's headers in place (an Upgrade request, which http-proxy sends as they are). */
export function modifyHeadersInPlace(
  headers: Record<string, string | string[] | undefined>,
  modifier: HeaderModifier,
): void {
  for (const name of modifier.remove ?? []) delete headers[name.toLowerCase()];
  for (const { name, value } of modifier.set ?? []) headers[name.toLowerCase()] = value;
  for (const { name, value } of modifier.add ?? []) {
    const lower = name.toLowerCase();
    const current = headers[lower];
    headers[lower] =
      current === undefined
        ? value
        : Array.isArray(current)
          ? [...current, value]
          : [current, value];
  }
}

/**
 * Applies a header modifier to headers held as [name, value, ...] (the form
 * upstream requests take): remove, then set (replacing every value of the
 * name), then add (beside any value already there). Names compare
 * case-insensitively.
 */
export function modifyHeaders(headers: readonly string[], modifier: HeaderModifier): string[] {
  const drop = new Set([
    ...(modifier.remove ?? []).map((name) => name.toLowerCase()),
    ...(modifier.set ?? []).map((h) => h.name.toLowerCase()),
  ]);
  const out: string[] = [];
  for (let i = 0; i < headers.length; i += 2) {
    if (!drop.has(headers[i]!.toLowerCase())) out.push(headers[i]!, headers[i + 1]!);
  }
  for (const { name, value } of modifier.set ?? []) out.push(name, value);
  for (const { name, value } of modifier.add ?? []) out.push(name, value);
  return out;
}
