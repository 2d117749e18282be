/**
 * HTTPRoutes compiled for the gateway: which rule of which route takes a
 * request, by the Gateway API's precedence, decided once per snapshot so a
 * request costs one Map read (its host) and a scan of that host's matches in
 * order.
 *
 * A route applies to a request's host when one of its hostnames does (an
 * exact name, or `*.suffix` for hosts under it; no hostnames: every host).
 * Among the matches of every applicable rule, the first in this order wins
 * (Gateway API HTTPRouteRule, "matches" precedence, then its tie-breaks):
 *   1. the route's most specific hostname for this host: exact, then the
 *      longest wildcard, then a route without hostnames;
 *   2. an Exact path over a PathPrefix, and a longer prefix over a shorter;
 *   3. a match with a method over one without;
 *   4. more header matches; 5. more query parameter matches;
 *   6. the older route (creationTimestamp), then namespace/name in order;
 *   7. the earlier rule, then the earlier match within it.
 * Given a gateway, only routes whose parentRefs name it are compiled; a
 * snapshot's routes are those already (the control plane chose them).
 */
import {
  gatewayDurationMs,
  type HttpRoute,
  type HttpRouteFilter,
  type HttpRouteRule,
  IDLE_TIMEOUT_ANNOTATION,
  MAX_REQUEST_BYTES_ANNOTATION,
} from '../../common/policy/httproute-schema.ts';
import { parseBytes } from '../../common/units.ts';
import type { ForwardOptions } from '../http/forward.ts';
import { type CompiledCors, compileCors } from './cors.ts';

export interface CompiledBackend {
  readonly service: string;
  readonly namespace: string;
  readonly port: number | undefined;
  readonly weight: number;
}

/** One match of one rule, with everything the request path reads already resolved. */
export interface CompiledMatch {
  /** `namespace/name` of the HTTPRoute. */
  readonly route: string;
  readonly ruleIndex: number;
  readonly ruleName: string | undefined;
  readonly exact: boolean;
  readonly path: string;
  readonly method: string | undefined;
  /** [lower-case name, value] pairs, all required. */
  readonly headers: readonly (readonly [string, string])[];
  readonly query: readonly (readonly [string, string])[];
  readonly filters: readonly HttpRouteFilter[];
  readonly backends: readonly CompiledBackend[];
  /** The rule's CORS filter, compiled. */
  readonly cors: CompiledCors | undefined;
  /** The rule's RequestHeaderModifier. */
  readonly requestHeaders: HttpRouteFilter['requestHeaderModifier'];
  /** Its ResponseHeaderModifier and its backendRequest and idle timeouts, as each attempt's forward options. */
  readonly forward: ForwardOptions | undefined;
  /** timeouts.request: every attempt within this. */
  readonly timeoutMs: number | undefined;
  /** The route's postern.dev/max-request-bytes. */
  readonly maxRequestBytes: number | undefined;
}

/** A Gateway API duration as milliseconds; 0s (off) and absent as undefined. */
function durationMs(text: string | undefined): number | undefined {
  const ms = text === undefined ? 0 : gatewayDurationMs(text);
  return ms > 0 ? ms : undefined;
}

/** What each attempt of a rule's requests carries to forwardRequest; undefined when nothing. */
function forwardOptionsOf(
  rule: HttpRouteRule,
  idleTimeoutMs: number | undefined,
): ForwardOptions | undefined {
  const modifier = rule.filters?.find(
    (f) => f.type === 'ResponseHeaderModifier',
  )?.responseHeaderModifier;
  const headersTimeoutMs = durationMs(rule.timeouts?.backendRequest);
  const set = modifier?.set?.flatMap((h) => [h.name.toLowerCase(), h.value]);
  const added = modifier?.add?.flatMap((h) => [h.name.toLowerCase(), h.value]);
  const removed = modifier?.remove?.map((name) => name.toLowerCase());
  const options: ForwardOptions = {
    ...(set?.length ? { responseHeaders: set } : {}),
    ...(added?.length ? { responseHeadersAdded: added } : {}),
    ...(removed?.length ? { responseHeadersRemoved: removed } : {}),
    ...(headersTimeoutMs === undefined ? {} : { headersTimeoutMs }),
    ...(idleTimeoutMs === undefined ? {} : { idleTimeoutMs }),
  };
  return Object.keys(options).length ? Object.freeze(options) : undefined;
}

/** What a request presents to the table: its host (no port), method, canonical path, headers and query. */
export interface RouteRequest {
  readonly host: string;
  readonly method: string;
  readonly path: string;
  header(lowerName: string): string | undefined;
  query(name: string): string | undefined;
}

interface Candidate {
  readonly match: CompiledMatch;
  /** 2 exact hostname, 1 wildcard (then its length), 0 none. */
  readonly hostRank: readonly [number, number];
  readonly created: number;
  readonly routeName: string;
  readonly matchIndex: number;
}

function compare(a: Candidate, b: Candidate): number {
  const keys = (c: Candidate) => [
    -c.hostRank[0],
    -c.hostRank[1],
    c.match.exact ? 0 : 1,
    -c.match.path.length,
    c.match.method ? 0 : 1,
    -c.match.headers.length,
    -c.match.query.length,
    c.created,
  ];
  const ka = keys(a);
  const kb = keys(b);
  for (let i = 0; i < ka.length; i++) if (ka[i] !== kb[i]) return ka[i]! - kb[i]!;
  if (a.routeName !== b.routeName) return a.routeName < b.routeName ? -1 : 1;
  return a.match.ruleIndex - b.match.ruleIndex || a.matchIndex - b.matchIndex;
}

function pathMatches(match: CompiledMatch, path: string): boolean {
  if (match.exact) return path === match.path;
  if (match.path === '/') return true;
  // Whole segments: /api matches /api and /api/x, not /apix.
  return (
    path.startsWith(match.path) &&
    (path.length === match.path.length ||
      match.path.endsWith('/') ||
      path.charCodeAt(match.path.length) === 47)
  );
}

/** A PathPrefix's trailing `/` is ignored (Gateway API): `/abc/` matches `/abc` and ranks as it. */
function compiledPath(path: { type?: string; value?: string } | undefined): string {
  const value = path?.value ?? '/';
  return path?.type !== 'Exact' && value.length > 1 && value.endsWith('/')
    ? value.slice(0, -1)
    : value;
}

function compileRule(
  route: HttpRoute,
  rule: HttpRouteRule,
  ruleIndex: number,
): { match: CompiledMatch; matchIndex: number }[] {
  const namespace = route.metadata.namespace ?? 'default';
  const backends = Object.freeze(
    (rule.backendRefs ?? []).map((ref) =>
      Object.freeze({
        service: ref.name,
        namespace: ref.namespace ?? namespace,
        port: ref.port,
        weight: ref.weight ?? 1,
      }),
    ),
  );
  const filters = Object.freeze([...(rule.filters ?? [])]);
  const cors = filters.find((f) => f.type === 'CORS')?.cors;
  const idle = durationMs(route.metadata.annotations?.[IDLE_TIMEOUT_ANNOTATION]);
  const maxBytes = route.metadata.annotations?.[MAX_REQUEST_BYTES_ANNOTATION];
  const compiled = {
    cors: cors ? compileCors(cors) : undefined,
    requestHeaders: filters.find((f) => f.type === 'RequestHeaderModifier')?.requestHeaderModifier,
    forward: forwardOptionsOf(rule, idle),
    timeoutMs: durationMs(rule.timeouts?.request),
    maxRequestBytes: maxBytes === undefined ? undefined : parseBytes(maxBytes),
  };
  // A rule without matches matches every request (a PathPrefix of /).
  const matches = rule.matches?.length ? rule.matches : [{}];
  return matches.map((m, matchIndex) => ({
    matchIndex,
    match: Object.freeze({
      route: `${namespace}/${route.metadata.name}`,
      ruleIndex,
      ruleName: rule.name,
      exact: m.path?.type === 'Exact',
      path: compiledPath(m.path),
      method: m.method,
      headers: Object.freeze(
        (m.headers ?? []).map((h) => [h.name.toLowerCase(), h.value] as const),
      ),
      query: Object.freeze((m.queryParams ?? []).map((q) => [q.name, q.value] as const)),
      filters,
      backends,
      ...compiled,
    }),
  }));
}

export class HttpRouteTable {
  /** Sorted candidates per exact host named by some route. */
  readonly #byHost = new Map<string, readonly CompiledMatch[]>();
  /** Per wildcard suffix (`.example.com`), longest first: the candidates of hosts under it not named exactly. */
  readonly #byWildcard: { readonly suffix: string; readonly matches: readonly CompiledMatch[] }[] =
    [];
  /** Hosts no route names: only routes without hostnames apply. */
  readonly #anyHost: readonly CompiledMatch[];

  constructor(routes: readonly HttpRoute[], gateway?: { name: string; namespace: string }) {
    const attached = routes.filter(
      (route) =>
        !gateway ||
        route.spec.parentRefs.some(
          (ref) =>
            ref.name === gateway.name &&
            (ref.namespace ?? route.metadata.namespace ?? 'default') === gateway.namespace,
        ),
    );
    const compiled = attached.map((route) => ({
      route,
      hostnames: route.spec.hostnames ?? [],
      created: route.metadata.creationTimestamp ? Date.parse(route.metadata.creationTimestamp) : 0,
      name: `${route.metadata.namespace ?? 'default'}/${route.metadata.name}`,
      matches: (route.spec.rules ?? []).flatMap((rule, r) => compileRule(route, rule, r)),
    }));
    /** The candidates for a host, given how each route's hostnames rank for it. */
    const candidatesFor = (
      rank: (hostnames: readonly string[]) => [number, number] | undefined,
    ) => {
      const candidates: Candidate[] = [];
      for (const c of compiled) {
        const hostRank = rank(c.hostnames);
        if (!hostRank) continue;
        for (const { match, matchIndex } of c.matches) {
          candidates.push({ match, hostRank, created: c.created, routeName: c.name, matchIndex });
        }
      }
      return Object.freeze(candidates.sort(compare).map((c) => c.match));
    };
    const rankFor = (host: string) => (hostnames: readonly string[]) => {
      if (!hostnames.length) return [0, 0] as [number, number];
      if (hostnames.includes(host)) return [2, host.length] as [number, number];
      const wildcard = hostnames
        .filter(
          (h) => h.startsWith('*.') && host.endsWith(h.slice(1)) && host.length > h.length - 1,
        )
        .reduce((longest, h) => Math.max(longest, h.length), -1);
      return wildcard >= 0 ? ([1, wildcard] as [number, number]) : undefined;
    };
    const names = new Set(compiled.flatMap((c) => c.hostnames));
    for (const name of names) {
      if (name.startsWith('*.')) continue;
      this.#byHost.set(name, candidatesFor(rankFor(name)));
    }
    const suffixes = [...names]
      .filter((n) => n.startsWith('*.'))
      .sort((a, b) => b.length - a.length);
    for (const wildcard of suffixes) {
      // A stand-in host under the wildcard that no route can name exactly: what any such host sees.
      const suffix = wildcard.slice(1);
      this.#byWildcard.push({ suffix, matches: candidatesFor(rankFor(`\u0000${suffix}`)) });
    }
    this.#anyHost = candidatesFor((hostnames) => (hostnames.length ? undefined : [0, 0]));
  }

  /** The match that takes `request`, or undefined (the gateway answers 404). */
  match(request: RouteRequest): CompiledMatch | undefined {
    const host = request.host.toLowerCase();
    let candidates = this.#byHost.get(host);
    if (!candidates) {
      candidates = this.#anyHost;
      for (const wildcard of this.#byWildcard) {
        if (host.endsWith(wildcard.suffix) && host.length > wildcard.suffix.length) {
          candidates = wildcard.matches;
          break;
        }
      }
    }
    for (const match of candidates) {
      if (!pathMatches(match, request.path)) continue;
      if (match.method && match.method !== request.method) continue;
      if (!match.headers.every(([name, value]) => request.header(name) === value)) continue;
      if (!match.query.every(([name, value]) => request.query(name) === value)) continue;
      return match;
    }
    return undefined;
  }
}
