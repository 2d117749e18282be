import type { Logger } from '../../common/log.ts';
import { authorize as decide } from '../policy/authorize.ts';
import type { SnapshotState } from '../policy/snapshot-state.ts';
import type { SidecarMetrics } from '../telemetry/metrics.ts';
import type { Filter } from './filter.ts';

/** `::ffff:10.1.2.3` (an IPv4 peer on a dual-stack socket) as `10.1.2.3`, so IPv4 ranges match it. */
function unmappedAddress(address: string | undefined): string | undefined {
  return address?.startsWith('::ffff:') && address.includes('.') ? address.slice(7) : address;
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
      // Node joins a repeated header into one value, an app may read only the
      // first copy: a header that routing depends on must be unambiguous.
      for (const name of applied.policy.matchedHeaders) {
        if ((req.headersDistinct[name]?.length ?? 0) > 1) {
          return {
            status: 400,
            code: 'POSTERN_REPEATED_HEADER',
            message: `the ${name} header appears more than once`,
            close: true,
          };
        }
      }
      const decision = decide(
        applied.policy,
        {
          method: req.method ?? '',
          path: exchange.target!.path,
          headers: req.headers,
          principal: exchange.principal,
          sourceAddress: unmappedAddress(req.socket.remoteAddress),
        },
        now(),
      );
      exchange.decision = decision;
      metrics.decisions.inc({ decision: decision.allowed ? 'allow' : 'deny', mode: decision.mode });
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
