/**
 * The request headers the sidecar does not simply pass on, and why: the one
 * list of them. The sidecar's header rules (sidecar/http/headers.ts) act on
 * it, and policy validation refuses routes that match on these names, since
 * the app never receives the client's copy of them.
 */
/**
 * Why a header name is not simply passed on:
 * - hop-by-hop: never forwarded as received;
 * - sidecar: owned, the client's copy always dropped, the inbound sidecar sets its own;
 * - client-address: owned, inbound restates it with the peer's address,
 *   outbound passes the app's own.
 */
export type HeaderRole = 'hop-by-hop' | 'sidecar' | 'client-address';

const ROLES: ReadonlyMap<string, HeaderRole> = new Map<string, HeaderRole>([
  ['connection', 'hop-by-hop'],
  ['keep-alive', 'hop-by-hop'],
  ['proxy-connection', 'hop-by-hop'],
  ['proxy-authenticate', 'hop-by-hop'],
  ['proxy-authorization', 'hop-by-hop'],
  ['te', 'hop-by-hop'],
  ['trailer', 'hop-by-hop'],
  ['transfer-encoding', 'hop-by-hop'],
  ['upgrade', 'hop-by-hop'],
  // Not hop-by-hop by RFC, but answered here: Node's server sends the
  // 100 Continue itself, and undici refuses to send Expect upstream.
  ['expect', 'hop-by-hop'],
  // No legitimate use, and CGI-style servers turn it into HTTP_PROXY, which
  // HTTP clients read as their proxy setting (httpoxy, CVE-2016-5385).
  ['proxy', 'hop-by-hop'],
  ['x-forwarded-client-cert', 'sidecar'],
  ['x-forwarded-proto', 'sidecar'],
  ['x-forwarded-for', 'client-address'],
  ['forwarded', 'client-address'],
  ['x-real-ip', 'client-address'],
]);
/** Every x-postern-* header is the sidecar's. */
const OWNED_PREFIX = 'x-postern-';

export function roleOf(lowerName: string): HeaderRole | undefined {
  return ROLES.get(lowerName) ?? (lowerName.startsWith(OWNED_PREFIX) ? 'sidecar' : undefined);
}

/** Whether the sidecar needs this header for the request itself (framing, the upgrade), so it is never removed early. */
export function isHopByHop(lowerName: string): boolean {
  return ROLES.get(lowerName) === 'hop-by-hop';
}
