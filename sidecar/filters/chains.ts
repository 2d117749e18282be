/**
 * The filter chains, in order, and why that order. Read this file to know
 * what happens to a request between accept and forward.
 *
 * Every chain begins with load-shed: while the process is overloaded (its
 * event loop lags or its heap nears the limit, sidecar/overload.ts) every
 * new request gets 503 with Retry-After before anything is spent on it.
 * Then request-framing: more header lines than the
 * listener allows get 431, a Host missing (HTTP/1.1), repeated or not one
 * authority gets 400, and the connection is closed. Before anything reads
 * a header or routes by Host, the request must be one that every parser on
 * the way reads the same way. The steps below come after it.
 *
 * Inbound (peer sidecar or client → this sidecar → the local app); the TLS
 * handshake before the chain has already required and verified a client
 * certificate from the mesh CA (or, for a plaintext connection, which only
 * mtls: PERMISSIVE admits, there was none):
 *   1. request-headers: removes the headers Connection names and the
 *      underscore spellings that will not reach the app (refusing what
 *      --headers-with-underscores refuses). First, because everything after
 *      may match on headers and must see the headers the app will see: a
 *      route chosen on `x-tenant: public` must not be the one a
 *      `Connection: x-tenant` then hides from the app.
 *   2. canonicalize: everything after matches on the canonical path, and the
 *      same path is forwarded, so nothing may look at the raw target first.
 *   3. authenticate-peer: the principal is needed by authorization; a
 *      certificate of a revoked identity, issued before the revocation, is
 *      refused here, before any policy could admit it, and so is a
 *      plaintext request unless mTLS is PERMISSIVE.
 *   4. authenticate-jwt: a bearer token, when the request carries one and a
 *      policy in force accepts JWTs, must verify (401 otherwise); its claims
 *      are authorization's input. After the peer, so a revoked peer never
 *      costs a signature check; before authorize, which needs the claims.
 *   5. authorize: on canonical facts; the cheapest rejection of a
 *      malformed request comes before the policy lookup. It also refuses a
 *      header some route matches on that arrives twice, under any spelling.
 *   6. request-body-limit: the route authorize chose may cap the body
 *      (`maxRequestBytes`): a longer Content-Length gets 413 before anything
 *      reads it, and before it spends rate-limit budget.
 *   7. rate-limit: after authorize, so a request authorization refuses never
 *      spends a caller's budget; and it needs the route authorize chose and
 *      the verified identity (principal, subject, claims) its keys count by.
 *   8. exfiltration-guard: last, on the route and caller the steps before
 *      settled: a caller an exfiltration alert blocked on this route is
 *      refused (403) whatever policy allows, and a capped route's caller gets
 *      what is left of its cap (the response is cut there). After
 *      rate-limit, so a refused request spends no cap, and a limited one
 *      costs no cap lookup.
 *
 * Gateway (a client outside the mesh → `postern gateway` → a mesh service);
 * the TLS handshake used the operator's certificate, and verified a
 * partner's client certificate when one was presented:
 *   1. request-headers: as inbound, for the same reason.
 *   2. canonicalize: HTTPRoutes and RoutePolicies match the canonical path.
 *   3. client-address: the address policy and source-ip limits see (the
 *      socket's, or a trusted proxy's last X-Forwarded-For), before
 *      anything that judges by it.
 *   4. http-route: the HTTPRoute rule (404 when none), a redirect, a CORS
 *      preflight. Before authentication: a browser sends a preflight
 *      without credentials, and a request no route takes is answered
 *      without spending a key lookup or a signature check on it.
 *   5. request-body-limit: needs the route (its limit); refuses an
 *      oversized body before any credential is checked.
 *   6. authenticate-client: the API key's consumer (401 for a key that
 *      names none), else a partner certificate's CN: the principal.
 *   7. authenticate-jwt, 8. authorize, 9. rate-limit, 10. exfiltration-guard:
 *      as inbound, on the gateway's own RoutePolicies, with the consumer as
 *      the principal and a `consumer` key for limits.
 *
 * Outbound (the local app → this sidecar → a peer sidecar):
 *   1. request-headers: the same removal, for the same reason (the
 *      destination is found by Host, which Connection may not name). Other
 *      underscore names are allowed: --headers-with-underscores protects the
 *      app behind a sidecar, and the destination's sidecar applies its own.
 *   2. route-destination: resolves the service and rewrites an absolute-form
 *      target to origin form; nothing else can be checked before the
 *      destination is known.
 *   3. canonicalize: the peer will canonicalise again; doing it here means the
 *      app learns of a bad path from its own sidecar, with a clear error.
 */
import type { IncomingMessage } from 'node:http';
import type { Socket } from 'node:net';
import type { Logger } from '../../common/log.ts';
import type { ByteBudgets } from '../exfiltration/byte-budgets.ts';
import type { Consumer } from '../gateway/consumers.ts';
import { OUTBOUND_HEADER_RULES, type RequestHeaderRules } from '../http/headers.ts';
import type { OverloadGuard } from '../overload.ts';
import type { SnapshotState } from '../policy/snapshot-state.ts';
import type { GlobalLimiter } from '../rate-limit/global-limiter.ts';
import type { LocalBuckets } from '../rate-limit/local-buckets.ts';
import type { SidecarMetrics } from '../telemetry/metrics.ts';
import { authenticateClient } from './authenticate-client.ts';
import { authenticateJwt } from './authenticate-jwt.ts';
import { authenticatePeer, type PeerCredential } from './authenticate-peer.ts';
import { authorizeRequest } from './authorize.ts';
import { canonicalize } from './canonicalize.ts';
import { clientAddress } from './client-address.ts';
import { exfiltrationGuard } from './exfiltration-guard.ts';
import type { Filter } from './filter.ts';
import { routeHttp } from './http-route.ts';
import { loadShed } from './load-shed.ts';
import { rateLimitRequest } from './rate-limit.ts';
import { requestBodyLimit } from './request-body-limit.ts';
import { requestFraming } from './request-framing.ts';
import { requestHeaders } from './request-headers.ts';
import { routeDestination } from './route-destination.ts';

const outboundRequestHeaders = requestHeaders(OUTBOUND_HEADER_RULES);

/** What the filters every chain begins with need: the overload guard, and the listener's header-line limit. */
interface FrontDeps {
  maxHeaders: number;
  overload: OverloadGuard;
}

/** The filters every chain begins with, in this order (see the top of this file). */
function front(deps: FrontDeps): Filter[] {
  return [loadShed(deps.overload), requestFraming(deps.maxHeaders)];
}
const inboundBodyLimit = requestBodyLimit((exchange) => exchange.decision?.maxRequestBytes);

export function inboundChain(
  deps: {
    state: SnapshotState;
    logger: Logger;
    metrics: SidecarMetrics;
    now: () => number;
    peerOf: (socket: Socket) => PeerCredential | undefined;
    headerRules: RequestHeaderRules;
    buckets: LocalBuckets;
    global: GlobalLimiter;
    budgets: ByteBudgets;
  } & FrontDeps,
): readonly Filter[] {
  return Object.freeze([
    ...front(deps),
    requestHeaders(deps.headerRules),
    canonicalize,
    authenticatePeer(deps.peerOf, deps.state, deps.metrics),
    authenticateJwt(deps.state),
    authorizeRequest(deps.state, deps.logger, deps.metrics, deps.now),
    inboundBodyLimit,
    rateLimitRequest(deps),
    exfiltrationGuard(deps),
  ]);
}

export function gatewayChain(
  deps: {
    state: SnapshotState;
    logger: Logger;
    metrics: SidecarMetrics;
    now: () => number;
    headerRules: RequestHeaderRules;
    buckets: LocalBuckets;
    global: GlobalLimiter;
    budgets: ByteBudgets;
    apiKeyHeader: string;
    consumers: () => readonly Consumer[];
    certificateOf: (socket: Socket) => string | undefined;
    clientAddressOf: (req: IncomingMessage) => string | undefined;
    maxRequestBytes: number;
  } & FrontDeps,
): readonly Filter[] {
  return Object.freeze([
    ...front(deps),
    requestHeaders(deps.headerRules),
    canonicalize,
    clientAddress(deps.clientAddressOf),
    routeHttp(deps.state),
    requestBodyLimit((exchange) => exchange.httpRoute?.maxRequestBytes ?? deps.maxRequestBytes),
    authenticateClient({
      header: deps.apiKeyHeader,
      consumers: deps.consumers,
      certificateOf: deps.certificateOf,
    }),
    authenticateJwt(deps.state),
    authorizeRequest(deps.state, deps.logger, deps.metrics, deps.now),
    rateLimitRequest(deps),
    exfiltrationGuard(deps),
  ]);
}

export function outboundChain(deps: { state: SnapshotState } & FrontDeps): readonly Filter[] {
  return Object.freeze([
    ...front(deps),
    outboundRequestHeaders,
    routeDestination(deps.state),
    canonicalize,
  ]);
}
