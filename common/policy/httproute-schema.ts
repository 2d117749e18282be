/**
 * The Kubernetes Gateway API HTTPRoute (`gateway.networking.k8s.io/v1`), as
 * much of it as `postern gateway` implements: parentRefs naming the
 * gateway, hostnames, rules with matches (path Exact / PathPrefix, headers,
 * query parameters, method), backendRefs to mesh services with weights, and
 * the filters RequestHeaderModifier, ResponseHeaderModifier, URLRewrite,
 * RequestRedirect and CORS (the experimental channel's HTTPCORSFilter), and
 * rule timeouts (request, backendRequest); an idle timeout, which the
 * Gateway API lacks, is the annotation `postern.dev/idle-timeout`, and a
 * request body limit `postern.dev/max-request-bytes`. A field the gateway does not implement is refused by name
 * (additionalProperties: false), never ignored: a route that seems to do
 * what it cannot would be worse than an error. `status` (written by
 * controllers) is accepted and not read.
 */
import { type Static, Type } from '@sinclair/typebox';
import {
  DNS_LABEL_PATTERN,
  DNS_SUBDOMAIN_PATTERN,
  HTTP_METHODS,
  object,
  StringEnum,
} from './schema.ts';

export const GATEWAY_API_VERSION = 'gateway.networking.k8s.io/v1';
export const HTTPROUTE_KIND = 'HTTPRoute';

/** A header or query parameter name/value pair to match exactly (Gateway API's Core match type). */
const NameValueMatch = object({
  type: Type.Optional(StringEnum(['Exact'] as const)),
  name: Type.String({ minLength: 1, maxLength: 256 }),
  value: Type.String({ maxLength: 4096 }),
});

const PathMatch = object({
  type: Type.Optional(StringEnum(['Exact', 'PathPrefix'] as const)),
  value: Type.Optional(Type.String({ minLength: 1, maxLength: 1024 })),
});

export const HttpRouteMatch = object({
  path: Type.Optional(PathMatch),
  headers: Type.Optional(Type.Array(NameValueMatch, { maxItems: 16 })),
  queryParams: Type.Optional(Type.Array(NameValueMatch, { maxItems: 16 })),
  method: Type.Optional(StringEnum(HTTP_METHODS)),
});

const HeaderValue = object({
  name: Type.String({ minLength: 1, maxLength: 256 }),
  value: Type.String({ maxLength: 4096 }),
});

const HeaderModifier = object({
  set: Type.Optional(Type.Array(HeaderValue, { maxItems: 16 })),
  add: Type.Optional(Type.Array(HeaderValue, { maxItems: 16 })),
  remove: Type.Optional(Type.Array(Type.String({ minLength: 1 }), { maxItems: 16 })),
});

const PathModifier = object({
  type: StringEnum(['ReplaceFullPath', 'ReplacePrefixMatch'] as const),
  replaceFullPath: Type.Optional(Type.String({ maxLength: 1024 })),
  replacePrefixMatch: Type.Optional(Type.String({ maxLength: 1024 })),
});

/** The Gateway API's HTTPCORSFilter (experimental channel, v1.2+): the gateway answers preflights itself. */
const CorsPolicy = object({
  allowOrigins: Type.Optional(
    Type.Array(Type.String({ minLength: 1, maxLength: 253 }), { maxItems: 64 }),
  ),
  allowCredentials: Type.Optional(Type.Boolean()),
  allowMethods: Type.Optional(
    Type.Array(StringEnum([...HTTP_METHODS, '*'] as const), { maxItems: 9 }),
  ),
  allowHeaders: Type.Optional(
    Type.Array(Type.String({ minLength: 1, maxLength: 256 }), { maxItems: 64 }),
  ),
  exposeHeaders: Type.Optional(
    Type.Array(Type.String({ minLength: 1, maxLength: 256 }), { maxItems: 64 }),
  ),
  maxAge: Type.Optional(Type.Integer({ minimum: 1, maximum: 86_400 })),
});

export const HttpRouteFilter = object({
  type: StringEnum([
    'RequestHeaderModifier',
    'ResponseHeaderModifier',
    'URLRewrite',
    'RequestRedirect',
    'CORS',
  ] as const),
  cors: Type.Optional(CorsPolicy),
  requestHeaderModifier: Type.Optional(HeaderModifier),
  responseHeaderModifier: Type.Optional(HeaderModifier),
  urlRewrite: Type.Optional(
    object({
      hostname: Type.Optional(Type.String({ pattern: DNS_SUBDOMAIN_PATTERN, maxLength: 253 })),
      path: Type.Optional(PathModifier),
    }),
  ),
  requestRedirect: Type.Optional(
    object({
      scheme: Type.Optional(StringEnum(['http', 'https'] as const)),
      hostname: Type.Optional(Type.String({ pattern: DNS_SUBDOMAIN_PATTERN, maxLength: 253 })),
      path: Type.Optional(PathModifier),
      port: Type.Optional(Type.Integer({ minimum: 1, maximum: 65535 })),
      statusCode: Type.Optional(Type.Integer({ minimum: 301, maximum: 302 })),
    }),
  ),
});

const BackendRef = object({
  group: Type.Optional(StringEnum([''] as const)),
  kind: Type.Optional(StringEnum(['Service'] as const)),
  name: Type.String({ pattern: DNS_LABEL_PATTERN, maxLength: 63 }),
  namespace: Type.Optional(Type.String({ pattern: DNS_LABEL_PATTERN, maxLength: 63 })),
  port: Type.Optional(Type.Integer({ minimum: 1, maximum: 65535 })),
  weight: Type.Optional(Type.Integer({ minimum: 0, maximum: 1_000_000 })),
});

/** The Gateway API's Duration (GEP-2257): 1h, 30s, 500ms, 1m30s; 0s turns a timeout off. */
export const GATEWAY_DURATION_PATTERN = '^([0-9]{1,5}(h|m|s|ms)){1,4}$';

export const HttpRouteRule = object({
  name: Type.Optional(Type.String({ pattern: DNS_LABEL_PATTERN, maxLength: 63 })),
  timeouts: Type.Optional(
    object({
      request: Type.Optional(Type.String({ pattern: GATEWAY_DURATION_PATTERN })),
      backendRequest: Type.Optional(Type.String({ pattern: GATEWAY_DURATION_PATTERN })),
    }),
  ),
  matches: Type.Optional(Type.Array(HttpRouteMatch, { maxItems: 64 })),
  filters: Type.Optional(Type.Array(HttpRouteFilter, { maxItems: 16 })),
  backendRefs: Type.Optional(Type.Array(BackendRef, { maxItems: 16 })),
});

const ParentRef = object({
  group: Type.Optional(StringEnum(['gateway.networking.k8s.io'] as const)),
  kind: Type.Optional(StringEnum(['Gateway'] as const)),
  name: Type.String({ pattern: DNS_SUBDOMAIN_PATTERN, maxLength: 253 }),
  namespace: Type.Optional(Type.String({ pattern: DNS_LABEL_PATTERN, maxLength: 63 })),
  sectionName: Type.Optional(Type.String({ maxLength: 253 })),
  port: Type.Optional(Type.Integer({ minimum: 1, maximum: 65535 })),
});

/** RFC 1123 hostnames, or `*.` followed by one: the Gateway API's Hostname. */
export const HOSTNAME_PATTERN =
  '^(\\*\\.)?[a-z0-9]([-a-z0-9]*[a-z0-9])?(\\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$';

export const HttpRouteSchema = Type.Object({
  apiVersion: StringEnum([GATEWAY_API_VERSION] as const),
  kind: StringEnum([HTTPROUTE_KIND] as const),
  // Kubernetes adds uid, resourceVersion, managedFields...: metadata stays open.
  metadata: Type.Object({
    name: Type.String({ pattern: DNS_SUBDOMAIN_PATTERN, maxLength: 253 }),
    namespace: Type.Optional(Type.String({ pattern: DNS_LABEL_PATTERN, maxLength: 63 })),
    creationTimestamp: Type.Optional(Type.String({ format: 'date-time' })),
    annotations: Type.Optional(Type.Record(Type.String(), Type.String())),
  }),
  spec: object({
    parentRefs: Type.Array(ParentRef, { minItems: 1, maxItems: 32 }),
    hostnames: Type.Optional(
      Type.Array(Type.String({ pattern: HOSTNAME_PATTERN, maxLength: 253 }), { maxItems: 16 }),
    ),
    rules: Type.Optional(Type.Array(HttpRouteRule, { maxItems: 16 })),
  }),
  status: Type.Optional(Type.Unknown()),
});

export type HttpRoute = Static<typeof HttpRouteSchema>;
export type HttpRouteRule = Static<typeof HttpRouteRule>;
export type HttpRouteMatch = Static<typeof HttpRouteMatch>;
export type HttpRouteFilter = Static<typeof HttpRouteFilter>;
export type CorsPolicy = Static<typeof CorsPolicy>;

/** The annotation that sets a route's idle timeout (the longest silence in a response body). */
export const IDLE_TIMEOUT_ANNOTATION = 'postern.dev/idle-timeout';
/** The annotation that caps a route's request bodies (a size such as 64Ki or 10Mi). */
export const MAX_REQUEST_BYTES_ANNOTATION = 'postern.dev/max-request-bytes';

/** A Gateway API Duration in milliseconds (the pattern already checked). */
export function gatewayDurationMs(text: string): number {
  const units: Record<string, number> = { h: 3_600_000, m: 60_000, s: 1000, ms: 1 };
  let total = 0;
  for (const [, amount, unit] of text.matchAll(/([0-9]+)(ms|h|m|s)/g)) {
    total += Number(amount) * units[unit!]!;
  }
  return total;
}
