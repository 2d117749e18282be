/**
 * The RoutePolicy schema: the one source of truth for the TypeScript types
 * (`Static<>`), the validator (common/policy/validate.ts) and the CRD's
 * openAPIV3Schema. Kept within what a Kubernetes structural schema allows:
 * every node typed, enums as `enum` (never `const`/`anyOf` of literals).
 */
import { Kind, type Static, Type, TypeRegistry } from '@sinclair/typebox';

export const API_VERSION = 'postern.dev/v1alpha1';
export const KIND = 'RoutePolicy';

TypeRegistry.Set<{ enum: readonly string[] }>(
  'StringEnum',
  (schema, value) => typeof value === 'string' && schema.enum.includes(value),
);

/** A string restricted to `values`, emitted as a plain JSON-Schema `enum`. */
export function StringEnum<const T extends readonly string[]>(
  values: T,
  options: { description?: string } = {},
) {
  return Type.Unsafe<T[number]>({ [Kind]: 'StringEnum', type: 'string', enum: values, ...options });
}

export const object = <T extends Parameters<typeof Type.Object>[0]>(
  properties: T,
  description?: string,
) =>
  Type.Object(properties, { additionalProperties: false, ...(description ? { description } : {}) });

export const HTTP_METHODS = [
  'GET',
  'HEAD',
  'POST',
  'PUT',
  'PATCH',
  'DELETE',
  'OPTIONS',
  'CONNECT',
  'TRACE',
] as const;

/** A DNS-1123 label: route names, namespaces. */
export const DNS_LABEL_PATTERN = '^[a-z0-9]([-a-z0-9]*[a-z0-9])?$';
/** A DNS-1123 subdomain: resource names. */
export const DNS_SUBDOMAIN_PATTERN = '^[a-z0-9]([-a-z0-9.]*[a-z0-9])?$';
/** Kubernetes duration notation: 100ms, 1s, 5m, 1h. */
export const DURATION_PATTERN = '^[1-9][0-9]*(ms|s|m|h)$';
/** Kubernetes quantity notation for byte sizes: 512, 64Ki, 50Mi, 1Gi, 10M. */
export const BYTES_PATTERN = '^[1-9][0-9]*(Ki|Mi|Gi|Ti|k|M|G|T)?$';

const PathMatch = object(
  {
    exact: Type.Optional(Type.String({ description: 'the whole path, e.g. /healthz' })),
    prefix: Type.Optional(
      Type.String({
        description: 'whole path segments: /orders matches /orders and /orders/7, not /ordersx',
      }),
    ),
    template: Type.Optional(
      Type.String({ description: 'segments with {parameters}, e.g. /orders/{id}' }),
    ),
  },
  'exactly one of exact, prefix, template',
);

/** An RFC 9110 field name (a token), any case. */
const HeaderName = (description = 'header name, any case') =>
  Type.String({ pattern: "^[A-Za-z0-9!#$%&'*+.^_`|~-]+$", description });

const HeaderMatch = object(
  {
    name: HeaderName(),
    exact: Type.Optional(Type.String()),
    prefix: Type.Optional(Type.String()),
    present: Type.Optional(
      Type.Boolean({ description: 'true: the header must be sent; false: it must not be' }),
    ),
  },
  'exactly one of exact, prefix, present',
);

const RouteMatch = object({
  methods: Type.Optional(Type.Array(StringEnum(HTTP_METHODS), { minItems: 1 })),
  path: Type.Optional(PathMatch),
  headers: Type.Optional(
    Type.Array(HeaderMatch, { minItems: 1, description: 'every header match must hold' }),
  ),
});

const Rule = object(
  {
    principals: Type.Optional(
      Type.Array(Type.String(), {
        minItems: 1,
        description:
          'SPIFFE IDs; spiffe://<td>/ns/<ns>/* for a namespace, spiffe://<td>/* for a trust domain, "*" for any authenticated principal',
      }),
    ),
    jwt: Type.Optional(
      object({
        claims: Type.Optional(
          Type.Record(Type.String(), Type.String(), {
            description:
              'claim name to required value; a space-separated claim such as scope matches if it contains the value',
          }),
        ),
        certificateBound: Type.Optional(
          Type.Boolean({
            description:
              "RFC 8705: the token's cnf.x5t#S256 must be the caller's mTLS certificate, so a token replayed from another workload fails",
          }),
        ),
      }),
    ),
    sourceIPs: Type.Optional(
      Type.Array(Type.String(), {
        minItems: 1,
        description: 'addresses or CIDR ranges (10.0.0.0/8, fd00::/8) of the connecting peer',
      }),
    ),
    expiresAt: Type.Optional(
      Type.String({
        format: 'date-time',
        description: 'RFC 3339; the entry stops matching at this instant',
      }),
    ),
  },
  'every condition must hold',
);

/** What one rate-limit bucket counts: a caller's verified identity, its address, or the route as a whole. */
export const RATE_LIMIT_KEY_PATTERN =
  '^(principal|subject|source-ip|consumer|route|claim:[A-Za-z0-9_.:-]{1,64})$';

const RateLimit = object(
  {
    requests: Type.Integer({ minimum: 1, description: 'the sustained rate: requests per `per`' }),
    per: Type.String({ pattern: DURATION_PATTERN }),
    burst: Type.Optional(
      Type.Integer({
        minimum: 0,
        description:
          'requests a caller may send at once beyond `requests` after being idle (default 0)',
      }),
    ),
    key: Type.Optional(
      Type.String({
        pattern: RATE_LIMIT_KEY_PATTERN,
        description:
          'one bucket per principal (default), subject (JWT sub), claim:<name>, source-ip (IPv6 by /64), consumer (gateway API key) or route (one for all callers)',
      }),
    ),
    scope: Type.Optional(
      StringEnum(['local', 'global'] as const, {
        description:
          'local: each sidecar counts alone (default); global: every replica shares one count in Redis',
      }),
    ),
    failureMode: Type.Optional(
      StringEnum(['open', 'closed'] as const, {
        description:
          "global only: what a request whose Redis call fails or times out gets: admitted (open, the default) or 429 (closed); after that failure each replica's local share decides until Redis answers again, in both modes",
      }),
    ),
  },
  'a token bucket per key: `requests` per `per` sustained, up to `requests` + `burst` at once',
);

const Exfiltration = object({
  maxResponseBytes: Type.Optional(
    object({
      bytes: Type.String({ pattern: BYTES_PATTERN }),
      per: Type.String({ pattern: DURATION_PATTERN }),
    }),
  ),
  action: Type.Optional(StringEnum(['alert', 'block'] as const)),
});

const Route = object({
  name: Type.String({ pattern: DNS_LABEL_PATTERN, maxLength: 63 }),
  match: Type.Optional(RouteMatch),
  // An empty list would silently mean "no allow list" (defaultAction decides):
  // leave the field out instead.
  allow: Type.Optional(Type.Array(Rule, { minItems: 1 })),
  deny: Type.Optional(Type.Array(Rule, { minItems: 1 })),
  rateLimit: Type.Optional(RateLimit),
  exfiltration: Type.Optional(Exfiltration),
  maxRequestBytes: Type.Optional(
    Type.String({
      pattern: BYTES_PATTERN,
      description:
        'the largest request body this route accepts (64Ki, 10Mi): a longer Content-Length gets 413 before the app sees anything, a longer chunked body is cut there',
    }),
  ),
});

/**
 * Signature algorithms a provider may pin. No HMAC: a mesh has no secret to
 * share through a policy, and HS256 next to a public key is the classic
 * algorithm-confusion attack.
 */
export const JWT_ALGORITHMS = [
  'RS256',
  'RS384',
  'RS512',
  'PS256',
  'PS384',
  'PS512',
  'ES256',
  'ES384',
  'ES512',
  'EdDSA',
] as const;

/** A public JWK (RFC 7517): open, as key types differ in their members. */
const JsonWebKey = Type.Object(
  { kty: Type.String({ minLength: 1 }) },
  { 'x-kubernetes-preserve-unknown-fields': true },
);

const JwtProvider = object(
  {
    issuer: Type.String({ minLength: 1, description: "the tokens' iss, exactly" }),
    jwksUri: Type.Optional(
      Type.String({
        pattern: '^https?://',
        description:
          "the provider's key set, fetched and refreshed: https://, or http:// on a loopback address (this or jwks)",
      }),
    ),
    jwks: Type.Optional(
      object(
        { keys: Type.Array(JsonWebKey, { minItems: 1 }) },
        'the public key set inline, for providers without a JWKS endpoint (this or jwksUri)',
      ),
    ),
    audiences: Type.Optional(
      Type.Array(Type.String(), {
        minItems: 1,
        description: "a token's aud must name one of these; none: aud is not checked",
      }),
    ),
    algorithms: Type.Optional(
      Type.Array(StringEnum(JWT_ALGORITHMS), {
        minItems: 1,
        description:
          'the signature algorithms accepted, pinned here and never taken from the token (default RS256 and ES256)',
      }),
    ),
    typ: Type.Optional(
      Type.String({
        minLength: 1,
        description:
          'the header typ a token must carry, e.g. at+jwt so an ID token cannot pass as an access token',
      }),
    ),
    clockSkewSeconds: Type.Optional(
      Type.Integer({
        minimum: 0,
        maximum: 300,
        description: 'accepted clock difference for exp, nbf and iat (default 60)',
      }),
    ),
    requiredClaims: Type.Optional(
      Type.Array(Type.String({ minLength: 1 }), {
        minItems: 1,
        description: 'claims every token must carry, beyond exp, which every token must',
      }),
    ),
    fromHeaders: Type.Optional(
      Type.Array(
        object({
          name: HeaderName(),
          prefix: Type.Optional(
            Type.String({ description: 'what precedes the token in the value, e.g. "Bearer "' }),
          ),
        }),
        {
          minItems: 1,
          description:
            'headers the token may come in (with fromCookies: default Authorization: Bearer only)',
        },
      ),
    ),
    fromCookies: Type.Optional(
      Type.Array(Type.String({ pattern: "^[A-Za-z0-9!#$%&'*+.^_`|~-]+$" }), {
        minItems: 1,
        description: 'cookies the token may come in (by cookie name)',
      }),
    ),
    forwardOriginalToken: Type.Optional(
      Type.Boolean({
        description:
          'whether the app receives the token as it came (default false: removed once verified)',
      }),
    ),
    outputClaimToHeaders: Type.Optional(
      Type.Array(
        object({
          header: HeaderName(),
          claim: Type.String({ minLength: 1, description: 'a top-level claim name' }),
        }),
        {
          minItems: 1,
          description:
            "verified claims the app receives in headers the sidecar owns: a client's copy of such a header never reaches the app",
        },
      ),
    ),
  },
  'an identity provider whose JWTs this policy accepts',
);

export const RoutePolicySpec = object({
  selector: Type.Optional(
    object({ matchLabels: Type.Optional(Type.Record(Type.String(), Type.String())) }),
  ),
  mode: Type.Optional(StringEnum(['enforce', 'audit'] as const)),
  mtls: Type.Optional(StringEnum(['STRICT', 'PERMISSIVE'] as const)),
  jwt: Type.Optional(Type.Array(JwtProvider)),
  defaultAction: Type.Optional(StringEnum(['allow', 'deny'] as const)),
  // The limit of every route that sets none of its own.
  rateLimit: Type.Optional(RateLimit),
  routes: Type.Array(Route),
});

export const RoutePolicySchema = Type.Object({
  apiVersion: StringEnum([API_VERSION] as const),
  kind: StringEnum([KIND] as const),
  // Kubernetes adds uid, resourceVersion, managedFields...: metadata stays open.
  metadata: Type.Object({
    name: Type.String({ pattern: DNS_SUBDOMAIN_PATTERN, maxLength: 253 }),
    namespace: Type.Optional(Type.String({ pattern: DNS_LABEL_PATTERN, maxLength: 63 })),
  }),
  spec: RoutePolicySpec,
});

export type RoutePolicy = Static<typeof RoutePolicySchema>;
export type Route = Static<typeof Route>;
export type Rule = Static<typeof Rule>;
export type PathMatch = Static<typeof PathMatch>;
export type HeaderMatch = Static<typeof HeaderMatch>;
export type JwtProvider = Static<typeof JwtProvider>;
export type RateLimit = Static<typeof RateLimit>;
export type HttpMethod = (typeof HTTP_METHODS)[number];
