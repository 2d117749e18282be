/**
 * The request target, canonicalised once: the path policy matches on is the
 * path forwarded to the app, so the app cannot read a request another way
 * than it was authorized. What could be read two ways is rejected (400), not
 * guessed at.
 *
 * - slashes are merged and `.`/`..` segments removed (RFC 3986 5.2.4);
 *   `..` above the root is rejected;
 * - percent-encodings of `/`, `\`, `.`, `%` and NUL are rejected (an app that
 *   decodes them would see other segments), as are malformed `%` escapes;
 * - a raw `\`, control characters, non-ASCII bytes and fragments are rejected;
 * - `;` parameters on a dot segment (`/..;/`, read as `..` by some servlet
 *   containers) are rejected.
 */
export interface RequestTarget {
  readonly path: string;
  /** Everything from `?` on, forwarded as received ('' when absent). */
  readonly search: string;
}

export type TargetResult =
  | { readonly ok: true; readonly target: RequestTarget }
  | { readonly ok: false; readonly reason: string };

const FORBIDDEN_ESCAPE = /%(2f|5c|2e|25|00)/i;
const MALFORMED_ESCAPE = /%(?![0-9a-f]{2})/i;
// Printable ASCII only; `\` and `#` are printable but refused below.
const NOT_PRINTABLE_ASCII = /[^\x21-\x7e]/;

function reject(reason: string): TargetResult {
  return { ok: false, reason };
}

/** Canonicalises an origin-form target (`/path?query`) as received on the request line. */
export function canonicalTarget(raw: string): TargetResult {
  if (raw.charCodeAt(0) !== 47) return reject('the request target must start with /');
  const q = raw.indexOf('?');
  const rawPath = q === -1 ? raw : raw.slice(0, q);
  const search = q === -1 ? '' : raw.slice(q);
  if (NOT_PRINTABLE_ASCII.test(raw))
    return reject('the request target has a control, space or non-ASCII character');
  if (raw.includes('#')) return reject('the request target has a fragment (#)');
  if (rawPath.includes('\\')) return reject('the path has a backslash');
  if (MALFORMED_ESCAPE.test(rawPath)) return reject('the path has a malformed percent-escape');
  if (FORBIDDEN_ESCAPE.test(rawPath)) return reject('the path has an encoded /, \\, ., % or NUL');

  const out: string[] = [];
  const segments = rawPath.split('/');
  for (let i = 1; i < segments.length; i++) {
    const segment = segments[i]!;
    if (segment === '' || segment === '.') continue;
    if (segment === '..') {
      if (!out.length) return reject('the path climbs above the root with ..');
      out.pop();
      continue;
    }
    if (segment.startsWith('.;') || segment.startsWith('..;'))
      return reject('the path has ; parameters on a dot segment');
    out.push(segment);
  }
  const last = segments[segments.length - 1];
  const trailingSlash = out.length > 0 && (last === '' || last === '.' || last === '..');
  const path = `/${out.join('/')}${trailingSlash ? '/' : ''}`;
  return { ok: true, target: { path, search } };
}
