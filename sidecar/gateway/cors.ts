/**
 * CORS for a route, as the Gateway API's HTTPCORSFilter says (and Envoy's
 * CORS filter does): the gateway answers a preflight itself, with the
 * allowed methods and headers, and adds Access-Control-Allow-Origin (and
 * -Credentials, -Expose-Headers) to the responses of allowed origins.
 * Compiled once per snapshot; a request costs a Set lookup, or a scan of
 * the wildcard origins.
 */
import type { CorsPolicy } from '../../common/policy/httproute-schema.ts';

export interface CompiledCors {
  readonly anyOrigin: boolean;
  readonly origins: ReadonlySet<string>;
  /** `*.` origins as [scheme and "://", ".suffix[:port]"]. */
  readonly wildcards: readonly (readonly [string, string])[];
  readonly credentials: boolean;
  /** Joined; undefined: echo the requested method ("*"). */
  readonly methods: string | undefined;
  /** Joined; undefined: echo the requested headers ("*"). */
  readonly headers: string | undefined;
  readonly expose: string | undefined;
  readonly maxAge: string;
}

/** The Gateway API's default preflight cache time. */
const DEFAULT_MAX_AGE_SECONDS = 5;

export function compileCors(policy: CorsPolicy): CompiledCors {
  const origins = policy.allowOrigins ?? [];
  const wildcards = origins
    .filter((o) => o.includes('://*.'))
    .map((o) => {
      const at = o.indexOf('://*.') + 3;
      return [o.slice(0, at), o.slice(at + 1)] as const;
    });
  const methods = policy.allowMethods ?? [];
  const headers = policy.allowHeaders ?? [];
  return Object.freeze({
    anyOrigin: origins.includes('*'),
    origins: new Set(origins.filter((o) => o !== '*' && !o.includes('://*.'))),
    wildcards: Object.freeze(wildcards),
    credentials: policy.allowCredentials ?? false,
    methods: methods.includes('*') ? undefined : methods.join(', ') || 'GET, HEAD, POST',
    headers: headers.includes('*') ? undefined : headers.join(', '),
    expose: policy.exposeHeaders?.length ? policy.exposeHeaders.join(', ') : undefined,
    maxAge: String(policy.maxAge ?? DEFAULT_MAX_AGE_SECONDS),
  });
}

export function originAllowed(cors: CompiledCors, origin: string): boolean {
  if (cors.anyOrigin || cors.origins.has(origin)) return true;
  for (const [scheme, suffix] of cors.wildcards) {
    if (
      origin.startsWith(scheme) &&
      origin.endsWith(suffix) &&
      origin.length > scheme.length + suffix.length
    )
      return true;
  }
  return false;
}

/** The origin the response names: `*` for any origin, unless credentials are allowed (browsers refuse `*` then). */
function allowOriginValue(cors: CompiledCors, origin: string): string {
  return cors.anyOrigin && !cors.credentials ? '*' : origin;
}

/**
 * The headers of the answer to a preflight (OPTIONS with Origin and
 * Access-Control-Request-Method); without them when the origin is not
 * allowed, so the browser refuses the request it was asking about.
 */
export function preflightHeaders(
  cors: CompiledCors,
  origin: string,
  requestMethod: string,
  requestHeaders: string | undefined,
): Record<string, string> {
  if (!originAllowed(cors, origin)) return { vary: 'Origin' };
  const headers: Record<string, string> = {
    'access-control-allow-origin': allowOriginValue(cors, origin),
    'access-control-allow-methods': cors.methods ?? requestMethod,
    'access-control-max-age': cors.maxAge,
    vary: 'Origin',
  };
  const allowHeaders = cors.headers ?? requestHeaders;
  if (allowHeaders) headers['access-control-allow-headers'] = allowHeaders;
  if (cors.credentials) headers['access-control-allow-credentials'] = 'true';
  return headers;
}

/** [name, value, ...] added to an actual response for `origin`; undefined when it is not allowed. */
export function responseCorsHeaders(cors: CompiledCors, origin: string): string[] | undefined {
  if (!originAllowed(cors, origin)) return undefined;
  const headers = ['access-control-allow-origin', allowOriginValue(cors, origin), 'vary', 'Origin'];
  if (cors.credentials) headers.push('access-control-allow-credentials', 'true');
  if (cors.expose) headers.push('access-control-expose-headers', cors.expose);
  return headers;
}
