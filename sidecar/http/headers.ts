/**
 * Header rules shared by both directions: what never reaches the other side,
 * what the sidecar states itself, and so what the app can trust.
 *
 * - Hop-by-hop headers (RFC 9110 7.6.1) describe one connection and are never
 *   forwarded, nor is any header the Connection header names. The
 *   request-headers filter removes the Connection-named ones from
 *   `req.headers` before anything matches on headers (see filters/chains.ts),
 *   so policy judges the request the app will receive; Connection may not
 *   name Host or Content-Length (400).
 * - Sidecar-owned headers (common/header-roles.ts, the one list of them): the identity
 *   headers (x-forwarded-client-cert, every x-postern-*), x-forwarded-proto,
 *   and the client-address headers X-Forwarded-For, Forwarded and X-Real-IP.
 *   A client's x-forwarded-client-cert, x-postern-* or x-forwarded-proto
 *   never reaches the other side, in either direction; the inbound sidecar
 *   sets its own. A name that only normalises to an owned one (`_` for `-`,
 *   any case: `x_postern_principal`) is dropped too, always: CGI-style
 *   servers (Rack, WSGI, PHP) read `x_postern_principal` as
 *   HTTP_X_POSTERN_PRINCIPAL, the same variable as the real one.
 * - Other names with underscores follow `--headers-with-underscores`
 *   (Envoy's headers_with_underscores_action): `allow` (the default),
 *   `drop`, or `reject` (400 POSTERN_UNDERSCORE_HEADER, connection closed;
 *   under reject an owned name's twin is refused too). Allow is safe as a
 *   default because every header the sidecar vouches for is owned, so its
 *   twins go whatever the setting; any other header the client could have
 *   sent with hyphens just as well. The one exception, a header a route
 *   matches on, is refused when an underscore spelling of it would reach the
 *   app (filters/authorize.ts). The setting guards the app behind this
 *   sidecar, so it applies inbound; outbound the destination's sidecar
 *   applies its own.
 * - Client address, inbound, as an Envoy with `use_remote_address: true`
 *   (Istio's sidecars leave these untouched inbound, and their apps, which
 *   see only a loopback peer, cannot learn the caller's address): the
 *   connecting peer's IP (IPv4-mapped IPv6 unwrapped) is appended to
 *   X-Forwarded-For (repeated lines combined into one) and, as
 *   `for=<ip>;proto=https` (IPv6 quoted and bracketed, RFC 7239), to
 *   Forwarded; X-Real-IP is set to it, replacing the client's;
 *   X-Forwarded-Proto is `https`. X-Forwarded-Host passes as sent. The app
 *   can trust the last element of X-Forwarded-For and of Forwarded, and
 *   X-Real-IP: everything before them is what the caller claimed. Outbound,
 *   the app's own values pass unchanged (the app speaks for itself; the
 *   destination's sidecar appends this pod's address).
 */
import type { IncomingHttpHeaders, OutgoingHttpHeaders } from 'node:http';
import { unmappedAddress } from '../../common/address.ts';
import { isHopByHop, roleOf } from '../../common/header-roles.ts';

export const IDENTITY_HEADER = 'x-postern-principal';
export const CLIENT_CERT_HEADER = 'x-forwarded-client-cert';
/** Set on requests that audit mode let through although policy would deny them. */
export const AUDIT_HEADER = 'x-postern-audit';

/** What the sidecar does with a request header whose name has an underscore (and is not an owned name's twin). */
export type UnderscoreAction = 'allow' | 'drop' | 'reject';
export const UNDERSCORE_ACTIONS: readonly UnderscoreAction[] = Object.freeze([
  'allow',
  'drop',
  'reject',
]);
export const DEFAULT_UNDERSCORE_ACTION: UnderscoreAction = 'allow';

export function isUnderscoreAction(value: string): value is UnderscoreAction {
  return (UNDERSCORE_ACTIONS as readonly string[]).includes(value);
}

/**
 * What becomes of a request header whose lower-case name has an underscore.
 * A spelling of a sidecar-owned name is dropped whatever the action says
 * (refused, under reject); any other name follows the action.
 */
export function underscoreVerdict(
  lowerName: string,
  action: UnderscoreAction,
): 'keep' | 'drop' | 'reject' {
  if (action === 'reject') return 'reject';
  if (action === 'drop') return 'drop';
  const role = roleOf(lowerName.replaceAll('_', '-'));
  return role === 'sidecar' || role === 'client-address' ? 'drop' : 'keep';
}

/**
 * Lower-case names listed in Connection (`Connection: close, x-foo`), which
 * are hop-by-hop too; undefined when it lists nothing but the usual single
 * close, keep-alive or upgrade (the common case, which allocates nothing).
 */
export function connectionNamed(
  connection: string | string[] | undefined,
): ReadonlySet<string> | undefined {
  if (!connection) return undefined;
  if (typeof connection === 'string') {
    const usual = connection.toLowerCase();
    if (usual === 'keep-alive' || usual === 'close' || usual === 'upgrade') return undefined;
  }
  const names = new Set<string>();
  for (const value of Array.isArray(connection) ? connection : [connection]) {
    for (const name of value.split(',')) {
      const trimmed = name.trim().toLowerCase();
      if (trimmed) names.add(trimmed);
    }
  }
  return names;
}

/** The connecting peer as the inbound sidecar states it; computed once per connection. */
export interface ClientAddress {
  /** X-Real-IP, and the element appended to X-Forwarded-For. */
  readonly ip: string;
  /** The element appended to Forwarded. */
  readonly forwarded: string;
  /** X-Forwarded-Proto. */
  readonly proto: 'https' | 'http';
}

export function clientAddressOf(
  remoteAddress: string | undefined,
  proto: 'https' | 'http',
): ClientAddress {
  // A socket already gone has no address; RFC 7239 says so with "unknown".
  const ip = unmappedAddress(remoteAddress) ?? 'unknown';
  const node = ip.includes(':') ? `"[${ip}]"` : ip;
  return Object.freeze({ ip, forwarded: `for=${node};proto=${proto}`, proto });
}

/** How a listener treats request headers (its request-headers filter and its forwarding); built once per listener. */
export interface RequestHeaderRules {
  readonly underscores: UnderscoreAction;
  /**
   * The listener traces requests: the W3C trace context that arrived
   * (traceparent, tracestate) is dropped, and the exchange's own span
   * context is added in its place (telemetry/otel-exchange.ts). Without
   * tracing both pass untouched, so apps' own traces still join up.
   */
  readonly replaceTraceContext?: boolean;
}

/**
 * Outbound allows other underscore names: the setting protects the app
 * behind a sidecar, and the destination's sidecar applies its own. Owned
 * names' twins are dropped all the same.
 */
export const OUTBOUND_HEADER_RULES: RequestHeaderRules = Object.freeze({ underscores: 'allow' });

/** What happens to one request header on its way upstream. */
type Fate = 'keep' | 'drop' | 'x-forwarded-for' | 'forwarded';

/** The one decision both forwarding paths (raw headers, upgrade in place) make per header. */
function fateOf(
  lowerName: string,
  named: ReadonlySet<string> | undefined,
  rules: RequestHeaderRules,
  client: ClientAddress | undefined,
  drop: ReadonlySet<string> | undefined,
): Fate {
  if (named?.has(lowerName) || drop?.has(lowerName)) return 'drop';
  if (rules.replaceTraceContext && (lowerName === 'traceparent' || lowerName === 'tracestate'))
    return 'drop';
  if (lowerName.includes('_')) {
    if (drop?.has(lowerName.replaceAll('_', '-'))) return 'drop';
    return underscoreVerdict(lowerName, rules.underscores) === 'keep' ? 'keep' : 'drop';
  }
  const role = roleOf(lowerName);
  if (role === undefined) return 'keep';
  if (role !== 'client-address') return 'drop';
  if (!client) return 'keep';
  return lowerName === 'x-forwarded-for' || lowerName === 'forwarded' ? lowerName : 'drop';
}

/** A list header's values as one (`a, b`), as a recipient may combine repeated lines (RFC 9110 5.3). */
function combined(list: string | undefined, value: string | readonly string[]): string | undefined {
  if (typeof value !== 'string') {
    for (const item of value) list = combined(list, item);
    return list;
  }
  const trimmed = value.trim();
  if (!trimmed) return list;
  return list === undefined ? trimmed : `${list}, ${trimmed}`;
}

/** The client-address headers the inbound sidecar sends, after what the client said of earlier hops. */
function pushClientAddress(
  out: string[],
  client: ClientAddress,
  forwardedFor: string | undefined,
  forwarded: string | undefined,
): void {
  out.push(
    'x-forwarded-for',
    forwardedFor === undefined ? client.ip : `${forwardedFor}, ${client.ip}`,
    'forwarded',
    forwarded === undefined ? client.forwarded : `${forwarded}, ${client.forwarded}`,
    'x-real-ip',
    client.ip,
    'x-forwarded-proto',
    client.proto,
  );
}

/**
 * Request headers to send upstream, as undici's flat [name, value, ...] list
 * built from rawHeaders (order, case and duplicates kept) in one pass:
 * minus hop-by-hop, Connection-named and sidecar-owned headers and those in
 * `drop` (with their underscore spellings), with other underscores handled
 * per `rules`; then, inbound (`client` given), the client-address headers;
 * then `add`.
 */
export function upstreamRequestHeaders(
  rawHeaders: readonly string[],
  connection: string | string[] | undefined,
  rules: RequestHeaderRules,
  client: ClientAddress | undefined,
  add: readonly string[],
  drop?: ReadonlySet<string>,
): string[] {
  const named = connectionNamed(connection);
  const out: string[] = [];
  let forwardedFor: string | undefined;
  let forwarded: string | undefined;
  for (let i = 0; i < rawHeaders.length; i += 2) {
    const name = rawHeaders[i]!;
    const value = rawHeaders[i + 1]!;
    const lower = name.toLowerCase();
    const fate = fateOf(lower, named, rules, client, drop);
    if (fate === 'keep') out.push(name, value);
    else if (fate === 'x-forwarded-for') forwardedFor = combined(forwardedFor, value);
    else if (fate === 'forwarded') forwarded = combined(forwarded, value);
  }
  if (client) pushClientAddress(out, client, forwardedFor, forwarded);
  for (const item of add) out.push(item);
  return out;
}

/**
 * The same rules applied in place to an IncomingMessage's headers, for the
 * Upgrade path (http-proxy forwards req.headers). Upgrade and Connection
 * stay: they are what makes this an upgrade.
 */
export function scrubRequestHeadersInPlace(
  headers: IncomingHttpHeaders,
  rules: RequestHeaderRules,
  client: ClientAddress | undefined,
  add: readonly string[],
  drop?: ReadonlySet<string>,
): void {
  const named = connectionNamed(headers.connection);
  let forwardedFor: string | undefined;
  let forwarded: string | undefined;
  for (const name of Object.keys(headers)) {
    if (name === 'upgrade' || name === 'connection') continue;
    const fate = fateOf(name, named, rules, client, drop);
    if (fate === 'keep') continue;
    const value = headers[name];
    if (fate === 'x-forwarded-for' && value) forwardedFor = combined(forwardedFor, value);
    else if (fate === 'forwarded' && value) forwarded = combined(forwarded, value);
    delete headers[name];
  }
  const restated: string[] = [];
  if (client) pushClientAddress(restated, client, forwardedFor, forwarded);
  for (const item of add) restated.push(item);
  for (let i = 0; i < restated.length; i += 2) headers[restated[i]!] = restated[i + 1]!;
}

/** Response headers from undici (lower-case keys) minus hop-by-hop ones. */
export function downstreamResponseHeaders(
  headers: Record<string, string | string[] | undefined>,
): OutgoingHttpHeaders {
  const named = connectionNamed(headers.connection);
  const out: OutgoingHttpHeaders = {};
  for (const name in headers) {
    if (isHopByHop(name) || named?.has(name)) continue;
    out[name] = headers[name];
  }
  return out;
}
