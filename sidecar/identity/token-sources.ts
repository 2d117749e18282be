import type { IncomingMessage } from 'node:http';
import type { JwtProvider } from '../../common/policy/schema.ts';
import { MAX_TOKEN_BYTES } from './jwt-verifier.ts';

/**
 * Where a request may carry a JWT (Istio's fromHeaders and fromCookies):
 * a header, after an optional prefix, or a cookie. Sources are interned per
 * snapshot (`TokenSources`), so a provider's accepted sources are a set of
 * these very objects and checking one is a Set lookup.
 */
export type TokenSource =
  | {
      readonly kind: 'header';
      /** Lower case. */
      readonly name: string;
      /** Lower case; compared without regard to case, as auth schemes are (RFC 9110 11.1). */
      readonly prefix: string;
      readonly label: string;
    }
  | { readonly kind: 'cookie'; readonly name: string; readonly label: string };

/** A request's token and where it came from. */
export interface FoundToken {
  readonly token: string;
  readonly source: TokenSource;
}

/** Why the request's token could not even be taken out of it. */
export interface TokenSourceProblem {
  /** invalid_request (400): more than one token; invalid_token (401): not a token. */
  readonly error: 'invalid_request' | 'invalid_token';
  readonly description: string;
}

export type TokenSearch = FoundToken | TokenSourceProblem | undefined;

// RFC 6750 section 2.1's b64token: what a bearer token may be made of.
const B64TOKEN = /^[A-Za-z0-9\-._~+/]+=*$/;

/** The source of a provider that names none: `Authorization: Bearer`. */
const DEFAULT_SOURCES: NonNullable<JwtProvider['fromHeaders']> = [
  { name: 'authorization', prefix: 'Bearer ' },
];

/** The token sources of a snapshot's providers, interned. */
export class TokenSources {
  readonly #byKey = new Map<string, TokenSource>();

  /** Every distinct source, in the order providers named them. */
  get all(): readonly TokenSource[] {
    return [...this.#byKey.values()];
  }

  /** The interned sources `provider` accepts tokens from. */
  of(provider: JwtProvider): ReadonlySet<TokenSource> {
    const sources = new Set<TokenSource>();
    const headers = provider.fromHeaders ?? (provider.fromCookies ? [] : DEFAULT_SOURCES);
    for (const { name, prefix = '' } of headers) {
      const lower = name.toLowerCase();
      sources.add(
        this.#intern(`h:${lower}:${prefix.toLowerCase()}`, () => ({
          kind: 'header',
          name: lower,
          prefix: prefix.toLowerCase(),
          label: prefix ? `the ${name} header after "${prefix}"` : `the ${name} header`,
        })),
      );
    }
    for (const name of provider.fromCookies ?? []) {
      sources.add(
        this.#intern(`c:${name}`, () => ({ kind: 'cookie', name, label: `the ${name} cookie` })),
      );
    }
    return sources;
  }

  #intern(key: string, make: () => TokenSource): TokenSource {
    let source = this.#byKey.get(key);
    if (!source) {
      source = Object.freeze(make());
      this.#byKey.set(key, source);
    }
    return source;
  }
}

function headerCount(raw: readonly string[], lowerName: string): number {
  let count = 0;
  for (let i = 0; i < raw.length; i += 2) {
    const name = raw[i]!;
    // Length first: lower-casing every name would allocate per request.
    if (name.length === lowerName.length && name.toLowerCase() === lowerName) count++;
  }
  return count;
}

/**
 * The one token `req` carries in any of `sources`, undefined when it carries
 * none. A header holding something else (another scheme after a different
 * prefix) is not a token: `Authorization: Basic` passes to the app. Two
 * tokens, or one source sent twice, is RFC 6750's invalid_request: the app
 * might read the one the sidecar did not verify. A token longer than
 * MAX_TOKEN_BYTES is refused before any parsing.
 */
export function findToken(req: IncomingMessage, sources: readonly TokenSource[]): TokenSearch {
  let found: FoundToken | undefined;
  for (const source of sources) {
    const candidate =
      source.kind === 'header' ? fromHeader(req, source) : fromCookie(req.headers.cookie, source);
    if (candidate === undefined) continue;
    if (typeof candidate !== 'string') return candidate;
    if (found) {
      return {
        error: 'invalid_request',
        description: `the request carries tokens in ${found.source.label} and ${source.label}`,
      };
    }
    found = { token: candidate, source };
  }
  return found;
}

function fromHeader(
  req: IncomingMessage,
  source: TokenSource & { kind: 'header' },
): string | TokenSourceProblem | undefined {
  const value = req.headers[source.name];
  if (typeof value !== 'string') return undefined;
  // Node keeps the first of two Authorization headers and joins other
  // repeats; either way the app could read a token the sidecar did not
  // (behind a first `Basic`, say), so a token header comes once or not at all.
  if (headerCount(req.rawHeaders, source.name) > 1) {
    return {
      error: 'invalid_request',
      description: `the ${source.name} header is sent more than once`,
    };
  }
  const prefix = source.prefix;
  if (prefix && value.slice(0, prefix.length).toLowerCase() !== prefix) return undefined;
  return tokenIn(value.slice(prefix.length).trim(), source);
}

function fromCookie(
  cookies: string | undefined,
  source: TokenSource & { kind: 'cookie' },
): string | TokenSourceProblem | undefined {
  if (cookies === undefined || !cookies.includes(`${source.name}=`)) return undefined;
  let value: string | undefined;
  for (const pair of cookies.split(';')) {
    const eq = pair.indexOf('=');
    if (eq < 0 || pair.slice(0, eq).trim() !== source.name) continue;
    if (value !== undefined) {
      return { error: 'invalid_request', description: `${source.label} is sent more than once` };
    }
    value = pair.slice(eq + 1).trim();
  }
  if (value === undefined) return undefined;
  // RFC 6265 allows a cookie value in double quotes.
  if (value.length >= 2 && value.startsWith('"') && value.endsWith('"')) value = value.slice(1, -1);
  return tokenIn(value, source);
}

function tokenIn(token: string, source: TokenSource): string | TokenSourceProblem {
  if (token.length > MAX_TOKEN_BYTES) {
    return {
      error: 'invalid_token',
      description: `the token is longer than ${MAX_TOKEN_BYTES} bytes`,
    };
  }
  if (!B64TOKEN.test(token)) {
    return { error: 'invalid_token', description: `${source.label} does not hold one token` };
  }
  return token;
}

/** The Cookie header without the token's cookie; undefined when nothing else is left. */
export function cookiesWithout(cookies: string, name: string): string | undefined {
  const kept = cookies
    .split(';')
    .map((pair) => pair.trim())
    .filter(
      (pair) => pair && !(pair.includes('=') && pair.slice(0, pair.indexOf('=')).trim() === name),
    );
  return kept.length ? kept.join('; ') : undefined;
}
