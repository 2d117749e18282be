import type { Logger } from '../../common/log.ts';
import { authorize as decide } from '../policy/authorize.ts';
import type { SnapshotState } from '../policy/snapshot-state.ts';
import type { Filter } from './filter.ts';

/**
 * Applies the route policy. The decision itself is the pure `authorize`;
 * this filter turns it into a 403 (enforce) or a logged would-deny (audit),
 * and answers 503 while no snapshot has arrived (fail closed).
 */
export function authorizeRequest(state: SnapshotState, logger: Logger, now: () => number): Filter {
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
      const decision = decide(
        applied.policy,
        {
          method: exchange.req.method ?? '',
          path: exchange.target!.path,
          principal: exchange.principal,
        },
        now(),
      );
      exchange.decision = decision;
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
