import type { IncomingMessage } from 'node:http';
import type { Span } from '@opentelemetry/api';
import type { RequestTarget } from '../../common/canonical-path.ts';
import type { CompiledMatch } from '../gateway/http-route-table.ts';
import type { LocalReply } from '../http/local-reply.ts';
import type { Decision } from '../policy/decision.ts';
import type { RateLimitOutcome } from '../rate-limit/limit.ts';
import type { Endpoint } from '../upstream/service-directory.ts';
import type { ExfiltrationVerdict } from './exfiltration-guard.ts';

/** What the filters of one request learn, in the order the chain fills it in. */
export interface Exchange {
  readonly req: IncomingMessage;
  readonly startedAt: number;
  /** Lower-case header names with an underscore that the app will receive (request-headers filter; usually none). */
  underscoreHeaders?: string[];
  /** Canonical path and query (canonicalize filter). */
  target?: RequestTarget;
  /** The HTTPRoute rule match that takes the request (gateway; http-route filter). */
  httpRoute?: CompiledMatch;
  /** The client's address as policy sees it: the socket's, or what a trusted proxy said (gateway; http-route filter). */
  clientAddress?: string;
  /** The caller's SPIFFE ID from its mTLS certificate (inbound), or `consumer:<name>` / `cert:<CN>` (gateway; authenticate filters). */
  principal?: string;
  /** The API-key consumer's name (gateway; authenticate-client filter). */
  consumer?: string;
  /** Request body bytes the upstream may be sent (gateway; request-body-limit filter). */
  requestLimit?: number;
  /** The claims of the request's verified bearer token (inbound; authenticate-jwt filter). */
  claims?: Readonly<Record<string, unknown>>;
  /** Lower-case names of request headers the app must not receive from the client (inbound; authenticate-jwt filter). */
  dropHeaders?: ReadonlySet<string>;
  /** [name, value, ...] the app receives in their place: verified claims, a Cookie without the token (inbound; authenticate-jwt). */
  addHeaders?: string[];
  /** base64url SHA-256 of the caller's certificate (inbound; authenticate-peer filter). */
  certificateThumbprint?: string;
  /** The policy decision (inbound; authorize filter). */
  decision?: Decision;
  /** Bytes of the response body relayed to the client (inbound, once forwarded). */
  responseBytes?: number;
  /** [name, value, ...] added to the response the app sends back (inbound; rate-limit filter's RateLimit). */
  responseHeaders?: string[];
  /** A host outside the mesh registry the app asked for, `host:port` (outbound; route-destination filter refused it). */
  unknownDestination?: string;
  /** The endpoints of the service the request is for (outbound; route-destination filter). */
  service?: readonly Endpoint[];
  /** The endpoint it went to, the last one when it was retried (outbound; chosen by the balancer). */
  destination?: Endpoint;
  /** What the route's rate limit made of the request (inbound; rate-limit filter). */
  rateLimit?: RateLimitOutcome;
  /** Response bytes this request may still read under its route's cap (inbound; exfiltration-guard filter). */
  responseLimit?: number;
  /** What the exfiltration guard did: refused a blocked caller, refused a capped one, cut the response at the cap. */
  exfiltration?: ExfiltrationVerdict;
  /** This request's span, when the process exports traces (telemetry/otel-exchange.ts). */
  span?: Span;
  /** [name, value, ...]: the span's trace context, sent on in place of the one that arrived. */
  traceHeaders?: string[];
}

/**
 * One step of a chain (Envoy's HTTP filter, reduced): it reads and annotates
 * the exchange and either lets the request continue (undefined) or answers
 * it itself (a LocalReply). It answers synchronously whenever it can and
 * returns a promise only when it must wait (a JWT whose key is not fetched
 * yet), so the common path pays no await (DESIGN.md, Request path).
 * Filters are built once per listener; they keep no per-request state.
 */
export type FilterResult = LocalReply | undefined;

export interface Filter {
  readonly name: string;
  onRequest(exchange: Exchange): FilterResult | Promise<FilterResult>;
}

/** Runs `filters` in order; synchronous until a filter returns a promise, then the rest after it. */
export function runFilters(
  filters: readonly Filter[],
  exchange: Exchange,
  from = 0,
): FilterResult | Promise<FilterResult> {
  // Indexed, not for-of: an iterator per request showed in the allocation profile.
  for (let i = from; i < filters.length; i++) {
    const result = filters[i]!.onRequest(exchange);
    if (result instanceof Promise) {
      return result.then((reply) => reply ?? runFilters(filters, exchange, i + 1));
    }
    if (result) return result;
  }
  return undefined;
}
