/**
 * The request target, canonicalised once: the path that policy matches on is
 * the path forwarded to the app, so the app cannot read a request another way
 * than it was authorized. What could be read two ways is rejected (400), not
 * guessed at. WHATWG `URL` is not this algorithm (it turns `\` into `/`).
 *
 * Every byte gets exactly one spelling, because apps that decode before
 * routing read `%3A` and `:` alike:
 * 1. Characters a path segment may hold raw (unreserved, sub-delims but `;`,
 *    `:` and `@`) are always raw: their escapes are decoded, once. Every other
 *    byte is always escaped (upper-case hex), and may not appear raw.
 *    Escapes of `/`, `\` and NUL are rejected (an app that decodes them would
 *    see other segments); escaped bytes >= 0x80 must be valid, shortest-form
 *    UTF-8. A `%25` followed by two hex digits (either case) is rejected where
 *    it appears in the result, not only where it was sent: `%25%32%46` decodes
 *    to `%252F`, which an app that decodes twice reads as `/`. The check runs
 *    before step 2, which joins segments with `/` and so never brings a `%25`
 *    next to hex digits.
 * 2. Slashes are merged and `.`/`..` segments removed (RFC 3986 5.2.4);
 *    climbing above the root is rejected.
 * 3. A raw `\`, control characters, spaces, non-ASCII bytes, fragments,
 *    characters a path may not hold raw (`" < > [ ] ^ \` { | }`) and raw `;`
 *    are rejected. Servlet containers and some routers cut `;...` path
 *    parameters off a segment before routing (`/orders/export;x=1` is their
 *    `/orders/export`, `/..;/` their `..`), a reading policy could not follow
 *    without guessing the app's; `%3B` stays an escape both agree on.
 */
export interface RequestTarget {
  readonly path: string;
  /** Everything from `?` on, forwarded as received ('' when absent). */
  readonly search: string;
}

export type TargetResult =
  | { readonly ok: true; readonly target: RequestTarget }
  | { readonly ok: false; readonly reason: string };

// Printable ASCII only; `\` and `#` are printable but refused below.
const NOT_PRINTABLE_ASCII = /[^\x21-\x7e]/;
// Printable, but never raw in a path (RFC 3986): they must arrive escaped.
const NOT_RAW_IN_PATH = /["<>[\]^`{|}]/;
const UTF8 = new TextDecoder('utf-8', { fatal: true });

function reject(reason: string): TargetResult {
  return { ok: false, reason };
}

function hexValue(code: number): number {
  if (code >= 48 && code <= 57) return code - 48; // 0-9
  const lower = code | 0x20;
  if (lower >= 97 && lower <= 102) return lower - 87; // a-f
  return -1;
}

/** Characters RFC 3986 lets a path segment hold raw, less `;` (see step 3). */
function rawInSegment(byte: number): boolean {
  // sub-delims but ';': ! $ & ' ( ) * + , =   and  : @
  return (
    isUnreserved(byte) ||
    (byte >= 0x24 && byte <= 0x2c && byte !== 0x25) ||
    byte === 0x21 ||
    byte === 0x3d ||
    byte === 0x3a ||
    byte === 0x40
  );
}

function isUnreserved(byte: number): boolean {
  return (
    (byte >= 0x41 && byte <= 0x5a) || // A-Z
    (byte >= 0x61 && byte <= 0x7a) || // a-z
    (byte >= 0x30 && byte <= 0x39) || // 0-9
    byte === 0x2d || // -
    byte === 0x2e || // .
    byte === 0x5f || // _
    byte === 0x7e // ~
  );
}

const HEX = '0123456789ABCDEF';
const percentEncode = (byte: number) => `%${HEX[byte >> 4]}${HEX[byte & 15]}`;

/** Step 1: returns the path with escapes normalised, or the reason it is refused. */
function normaliseEscapes(rawPath: string): string | { reason: string } {
  if (!rawPath.includes('%')) return rawPath;
  let out = '';
  let i = 0;
  while (i < rawPath.length) {
    const c = rawPath.charCodeAt(i);
    if (c !== 37) {
      out += rawPath[i];
      i++;
      continue;
    }
    const hi = hexValue(rawPath.charCodeAt(i + 1));
    const lo = hexValue(rawPath.charCodeAt(i + 2));
    if (hi < 0 || lo < 0) return { reason: 'the path has a malformed percent-escape' };
    const byte = hi * 16 + lo;
    if (byte === 0x2f || byte === 0x5c || byte === 0) {
      return { reason: 'the path has an encoded /, \\ or NUL' };
    }
    if (byte >= 0x80) {
      // A run of escaped non-ASCII bytes must be one valid UTF-8 sequence or more.
      const bytes: number[] = [];
      while (rawPath.charCodeAt(i) === 37) {
        const h = hexValue(rawPath.charCodeAt(i + 1));
        const l = hexValue(rawPath.charCodeAt(i + 2));
        if (h < 0 || l < 0) return { reason: 'the path has a malformed percent-escape' };
        const b = h * 16 + l;
        if (b < 0x80) break;
        bytes.push(b);
        i += 3;
      }
      try {
        UTF8.decode(Uint8Array.from(bytes));
      } catch {
        return { reason: 'the path has invalid or overlong UTF-8 in its escapes' };
      }
      for (const b of bytes) out += percentEncode(b);
      continue;
    }
    out += rawInSegment(byte) ? String.fromCharCode(byte) : percentEncode(byte);
    i += 3;
  }
  if (decodesAgain(out)) {
    return {
      reason:
        'the path has a double-encoded escape (once decoded it holds %25XX, which decodes again)',
    };
  }
  return out;
}

/**
 * Whether normalised escapes hold `%25` and two hex digits. Checked on the
 * output, because the digits may have been escapes themselves (`%25%34%31`
 * becomes `%2541`). Every `%` there starts an escape, so each `%25` found is
 * a whole one. indexOf, not a regex: this runs per request.
 */
function decodesAgain(normalised: string): boolean {
  for (let i = normalised.indexOf('%25'); i !== -1; i = normalised.indexOf('%25', i + 3)) {
    if (hexValue(normalised.charCodeAt(i + 3)) >= 0 && hexValue(normalised.charCodeAt(i + 4)) >= 0)
      return true;
  }
  return false;
}

/** Canonicalises an origin-form target (`/path?query`) as received on the request line. */
export function canonicalTarget(raw: string): TargetResult {
  if (raw.charCodeAt(0) !== 47) return reject('the request target must start with /');
  if (NOT_PRINTABLE_ASCII.test(raw)) {
    return reject('the request target has a control, space or non-ASCII character');
  }
  if (raw.includes('#')) return reject('the request target has a fragment (#)');
  const q = raw.indexOf('?');
  const rawPath = q === -1 ? raw : raw.slice(0, q);
  const search = q === -1 ? '' : raw.slice(q);
  if (rawPath.includes('\\')) return reject('the path has a backslash');
  if (NOT_RAW_IN_PATH.test(rawPath))
    return reject('the path has a character that must be percent-encoded');
  if (rawPath.includes(';'))
    return reject('the path has a ; (path parameters are read differently by different servers)');
  // The common case costs no split and join: without escapes, empty
  // segments or dot segments the path is already canonical.
  if (!rawPath.includes('%') && !rawPath.includes('//') && !rawPath.includes('/.')) {
    return { ok: true, target: { path: rawPath, search } };
  }
  const decoded = normaliseEscapes(rawPath);
  if (typeof decoded !== 'string') return reject(decoded.reason);

  const out: string[] = [];
  const segments = decoded.split('/');
  for (let i = 1; i < segments.length; i++) {
    const segment = segments[i]!;
    if (segment === '' || segment === '.') continue;
    if (segment === '..') {
      if (!out.length) return reject('the path climbs above the root with ..');
      out.pop();
      continue;
    }
    out.push(segment);
  }
  const last = segments[segments.length - 1];
  const trailingSlash = out.length > 0 && (last === '' || last === '.' || last === '..');
  const path = `/${out.join('/')}${trailingSlash ? '/' : ''}`;
  return { ok: true, target: { path, search } };
}
