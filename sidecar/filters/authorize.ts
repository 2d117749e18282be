import { unmappedAddress } from '../../common/address.ts';
import type { Logger } from '../../common/log.ts';
import type { LocalReply } from '../http/local-reply.ts';
import { boundToCertificate, authorize as decide } from '../policy/authorize.ts';
import type { SnapshotState } from '../policy/snapshot-state.ts';
import type { SidecarMetrics } from '../telemetry/metrics.ts';
import type { Exchange, Filter } from './filter.ts';

function repeatedHeader(name: string): LocalReply {
  return {
    status: 400,
    code: 'POSTERN_REPEATED_HEADER',
    message: `the ${name} header appears more than once`,
    close: true,
  };
}

/**
 * A header routing depends on must be unambiguous: Node joins a repeated
 * header into one value, an app may read only the first copy, and a
 * CGI-style app reads `x_tenant` as `x-tenant`. So a matched header may
 * arrive once, under one spelling. (Underscore spellings that will not
 * reach the app were already removed by the request-headers filter.)
 */
function ambiguousMatchedHeader(
  exchange: Exchange,
  matchedHeaders: readonly string[],
): LocalReply | undefined {
  const req = exchange.req;
  for (const name of matchedHeaders) {
    if ((req.headersDistinct[name]?.length ?? 0) > 1) return repeatedHeader(name);
  }
  const underscored = exchange.underscoreHeaders;
  if (!underscored) return undefined;
  for (const spelled of underscored) {
    const name = spelled.replaceAll('_', '-');
    if (!matchedHeaders.includes(name)) continue;
    if (req.headers[name] !== undefined) return repeatedHeader(name);
    return {
      status: 400,
      code: 'POSTERN_UNDERSCORE_HEADER',
      message: `the ${spelled} header reads as ${name} to servers that take _ for -, and routes match on ${name}`,
      close: true,
    };
  }
  return undefined;
}

/**
 * Applies the route policy. The decision itself is the pure `authorize`;
 * this filter turns it into a 403 (enforce), or in audit mode into a log
 * line, a metric and an x-postern-audit header to the app, never a block;
 * and answers 503 while no snapshot has arrived (fail closed).
 */
export function authorizeRequest(
  state: SnapshotState,
  logger: Logger,
  metrics: SidecarMetrics,
  now: () => number,
): Filter {
  return {
    name: 'authorize',
    onRequest(exchange) {
      const applied = state.current;
      if (!applied) {
        return {
          status: 503,
          code: 'POSTERN_NOT_READY',
          message: 'the sidecar has no policy snapshot yet',
        };
      }
      const req = exchange.req;
      const ambiguous = ambiguousMatchedHeader(exchange, applied.policy.matchedHeaders);
      if (ambiguous) return ambiguous;
      const decision = decide(
        applied.policy,
        {
          method: req.method ?? '',
          path: exchange.target!.path,
          headers: req.headers,
          principal: exchange.principal,
          sourceAddress: exchange.clientAddress ?? unmappedAddress(req.socket.remoteAddress),
          claims: exchange.claims,
          certificateThumbprint: exchange.certificateThumbprint,
        },
        now(),
      );
      exchange.decision = decision;
      metrics.decisions.inc(decision.allowed ? 'allow' : 'deny', decision.mode);
      if (decision.allowed) return undefined;
      const fields = {
        principal: exchange.principal,
        method: exchange.req.method,
        path: exchange.target!.path,
        policy: decision.policy,
        route: decision.route,
        rule: decision.rule,
        reason: decision.reason,
        version: applied.snapshot.version,
      };
      if (decision.mode === 'audit') {
        logger.info('audit: request would be denied', fields);
        return undefined;
      }
      logger.info('request denied', fields);
      if (
        decision.bindingRequired &&
        exchange.claims !== undefined &&
        !boundToCertificate(exchange.claims, exchange.certificateThumbprint)
      ) {
        // RFC 8705 section 3: a token not bound to the presented certificate is an invalid token.
        return {
          status: 401,
          code: 'POSTERN_TOKEN_NOT_BOUND',
          message: "the token is not bound to the caller's certificate",
          headers: {
            'www-authenticate':
              'Bearer realm="postern", error="invalid_token", error_description="the token is not bound to the caller\'s certificate"',
          },
          details: { policy: decision.policy, route: decision.route },
        };
      }
      if (decision.tokenRequired && exchange.claims === undefined) {
        // RFC 6750 section 3.1: a request without a token gets the challenge and no error code.
        return {
          status: 401,
          code: 'POSTERN_TOKEN_REQUIRED',
          message: 'this route needs a bearer token',
          headers: { 'www-authenticate': 'Bearer realm="postern"' },
          details: { policy: decision.policy, route: decision.route },
        };
      }
      return {
        status: 403,
        code: 'POSTERN_DENIED',
        message: 'denied by policy',
        details: {
          policy: decision.policy,
          route: decision.route,
          rule: decision.rule,
          reason: decision.reason,
        },
      };
    },
  };
}
