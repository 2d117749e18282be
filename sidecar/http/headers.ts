/**
 * Header rules shared by both directions.
 *
 * Hop-by-hop headers (RFC 9110 7.6.1) describe one connection and are never
 * forwarded, nor is any header the Connection header names. Identity headers
 * are the sidecar's to set: a client that sends its own
 * x-forwarded-client-cert or x-postern-* could otherwise claim any identity,
 * so every copy from the client is dropped before ours are added.
 */
import type { IncomingHttpHeaders, OutgoingHttpHeaders } from 'node:http';

/** Headers never forwarded as received: hop-by-hop ones, and the few the sidecar answers or restates. */
const HOP_BY_HOP = new Set([
  'connection',
  'keep-alive',
  'proxy-connection',
  'proxy-authenticate',
  'proxy-authorization',
  'te',
  'trailer',
  'transfer-encoding',
  'upgrade',
  // Not hop-by-hop by RFC, but answered here: Node's server sends the
  // 100 Continue itself, and undici refuses to send Expect upstream.
  'expect',
  // The sidecar states the scheme the caller used; a client's copy would lie.
  'x-forwarded-proto',
]);

export const IDENTITY_HEADER = 'x-postern-principal';
export const CLIENT_CERT_HEADER = 'x-forwarded-client-cert';
/** Set on requests that audit mode let through although policy would deny them. */
export const AUDIT_HEADER = 'x-postern-audit';

function isIdentityHeader(lowerName: string): boolean {
  return lowerName === CLIENT_CERT_HEADER || lowerName.startsWith('x-postern-');
}

/** Lower-case names listed in Connection (`Connection: close, x-foo`), which are hop-by-hop too. */
function connectionNamed(connection: string | string[] | undefined): Set<string> | undefined {
  if (!connection) return undefined;
  const names = new Set<string>();
  for (const value of Array.isArray(connection) ? connection : [connection]) {
    for (const name of value.split(',')) names.add(name.trim().toLowerCase());
  }
  return names;
}

/**
 * Request headers to send upstream, as undici's flat [name, value, ...] list
 * built from rawHeaders (order and duplicates kept), minus hop-by-hop and
 * identity headers, plus `add`.
 */
export function upstreamRequestHeaders(
  rawHeaders: readonly string[],
  connection: string | string[] | undefined,
  add: readonly string[],
): string[] {
  const named = connectionNamed(connection);
  const out: string[] = [];
  for (let i = 0; i < rawHeaders.length; i += 2) {
    const name = rawHeaders[i]!;
    const lower = name.toLowerCase();
    if (HOP_BY_HOP.has(lower) || isIdentityHeader(lower) || named?.has(lower)) continue;
    out.push(name, rawHeaders[i + 1]!);
  }
  out.push(...add);
  return out;
}

/** The same rules applied in place to an IncomingMessage's headers (for the Upgrade path, which http-proxy forwards from req.headers). */
export function scrubRequestHeadersInPlace(
  headers: IncomingHttpHeaders,
  add: Readonly<Record<string, string>>,
): void {
  const named = connectionNamed(headers.connection);
  for (const name of Object.keys(headers)) {
    // Upgrade and Connection stay: they are what makes this an upgrade.
    if (name === 'upgrade' || name === 'connection') continue;
    if (HOP_BY_HOP.has(name) || isIdentityHeader(name) || (named?.has(name) && name !== 'upgrade'))
      delete headers[name];
  }
  Object.assign(headers, add);
}

/** Response headers from undici (lower-case keys) minus hop-by-hop ones. */
export function downstreamResponseHeaders(
  headers: Record<string, string | string[] | undefined>,
): OutgoingHttpHeaders {
  const named = connectionNamed(headers.connection);
  const out: OutgoingHttpHeaders = {};
  for (const name in headers) {
    if (HOP_BY_HOP.has(name) || named?.has(name)) continue;
    out[name] = headers[name];
  }
  return out;
}
