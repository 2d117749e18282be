import { isIP } from 'node:net';

const DNS_NAME =
  /^(?=.{1,253}$)[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?(\.[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?)*$/i;

/**
 * Whether `text` is exactly `host:port`: an IPv4 address, a bracketed IPv6
 * address or a DNS name, and a port 1-65535. Registry addresses become URLs
 * (`https://host:port`), so nothing else may get through.
 */
export function isHostPort(text: string): boolean {
  const colon = text.lastIndexOf(':');
  if (colon <= 0) return false;
  const host = text.slice(0, colon);
  const port = text.slice(colon + 1);
  if (!/^\d{1,5}$/.test(port) || Number(port) < 1 || Number(port) > 65535) return false;
  if (host.startsWith('[') && host.endsWith(']')) return isIP(host.slice(1, -1)) === 6;
  return isIP(host) === 4 || DNS_NAME.test(host);
}

/** `::ffff:10.1.2.3` (an IPv4 peer on a dual-stack socket) as `10.1.2.3`, so IPv4 ranges match it and headers state it as IPv4. */
export function unmappedAddress(address: string | undefined): string | undefined {
  return address?.startsWith('::ffff:') && address.includes('.') ? address.slice(7) : address;
}

/** An IP address without IPv4-mapped IPv6 wrapping or brackets, for comparison. */
export function plainAddress(address: string): string {
  const bare = address.startsWith('[') && address.endsWith(']') ? address.slice(1, -1) : address;
  return unmappedAddress(bare)!;
}

export function isLoopbackAddress(address: string): boolean {
  return address === '::1' || (isIP(address) === 4 && address.startsWith('127.'));
}

/** The host of a `host:port` (brackets kept off an IPv6 host). */
export function hostOfHostPort(text: string): string {
  return plainAddress(text.slice(0, text.lastIndexOf(':')));
}

/**
 * RFC 9110 Host as a mesh reads it: a DNS name (underscores allowed, as
 * some resolvers hand them out; an optional trailing dot), an IPv4 address
 * or a bracketed IPv6 address, then an optional port. Stricter than RFC
 * 3986's reg-name on purpose: a comma or a space would let two parsers
 * disagree on which host a request is for.
 */
const AUTHORITY =
  /^(?:[a-z0-9_](?:[a-z0-9_-]{0,61}[a-z0-9_])?(?:\.[a-z0-9_](?:[a-z0-9_-]{0,61}[a-z0-9_])?)*\.?|\[[0-9a-f:.]+\])(?::[0-9]{1,5})?$/i;

/** Whether `text` is a Host header value this mesh routes by (see AUTHORITY). */
export function isAuthority(text: string): boolean {
  return text.length <= 255 + 6 && AUTHORITY.test(text);
}
