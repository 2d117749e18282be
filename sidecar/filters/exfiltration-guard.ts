import { UNAUTHENTICATED_CALLER } from '../../common/usage.ts';
import { ByteBudgets } from '../exfiltration/byte-budgets.ts';
import type { LocalReply } from '../http/local-reply.ts';
import { blockKey, type SnapshotState } from '../policy/snapshot-state.ts';
import type { SidecarMetrics } from '../telemetry/metrics.ts';
import type { Exchange, Filter } from './filter.ts';

/** What the guard did to a request, for spans, the access log and metrics. */
export type ExfiltrationVerdict = 'blocked' | 'capped' | 'cut';

const blockedReply = (principal: string, route: string): LocalReply => ({
  status: 403,
  code: 'POSTERN_EXFILTRATION_BLOCKED',
  message:
    'an exfiltration alert blocked this caller on this route; an operator clears it through the control plane (DELETE /v1/blocks)',
  details: { principal, route },
});

/**
 * The exfiltration guard (a route with `exfiltration.action: block`): a
 * caller the control plane blocked on the route after an alert is refused
 * (403) until an operator clears it; a caller with nothing left of the
 * route's `maxResponseBytes` this period is refused (403, Retry-After), and
 * one with some left gets at most that much: the response is cut there
 * (http/forward.ts). Requests without a verified identity (mtls
 * PERMISSIVE) are guarded as one caller, as detection counts them: a cap
 * that skipped them would be open to anyone who leaves the certificate out.
 */
export function exfiltrationGuard(deps: {
  state: SnapshotState;
  budgets: ByteBudgets;
  metrics: SidecarMetrics;
  now: () => number;
}): Filter {
  const { state, budgets, metrics, now } = deps;
  return {
    name: 'exfiltration-guard',
    onRequest(exchange) {
      const decision = exchange.decision;
      if (!decision?.route) return undefined;
      const principal = exchange.principal ?? UNAUTHENTICATED_CALLER;
      const blocked = state.current?.blocked;
      if (blocked?.size && blocked.has(blockKey(principal, decision.route))) {
        exchange.exfiltration = 'blocked';
        metrics.exfiltration.inc(decision.route, 'blocked');
        return blockedReply(principal, decision.route);
      }
      const cap = decision.responseCap;
      if (!cap) return undefined;
      const at = now();
      const left = budgets.remaining(capKey(principal, cap.route), cap.bytes, cap.perMs, at);
      if (left > 0) {
        exchange.responseLimit = left;
        return undefined;
      }
      exchange.exfiltration = 'capped';
      metrics.exfiltration.inc(decision.route, 'capped');
      const retryAfter = Math.ceil((ByteBudgets.periodEndMs(at, cap.perMs) - at) / 1000);
      return {
        status: 403,
        code: 'POSTERN_EXFILTRATION_CAP',
        message: `this caller has read the route's cap (${cap.bytes} bytes per ${cap.perMs / 1000} s) and is refused until the period ends`,
        headers: { 'retry-after': String(retryAfter) },
        details: { route: cap.route, capBytes: cap.bytes, retryAfterSeconds: retryAfter },
      };
    },
  };
}

export const capKey = (principal: string, route: string) => `${principal}\n${route}`;

/**
 * After a guarded request was answered: the response's fate under the cap
 * (refused whole, or cut) is recorded, and what it read counts against the
 * caller's budget.
 */
export function settleResponse(
  exchange: Exchange,
  overCap: 'refused' | 'cut' | undefined,
  deps: { budgets: ByteBudgets; metrics: SidecarMetrics; now: () => number },
): void {
  if (overCap) {
    exchange.exfiltration = overCap === 'cut' ? 'cut' : 'capped';
    deps.metrics.exfiltration.inc(exchange.decision!.route!, exchange.exfiltration);
  }
  spendResponse(exchange, deps.budgets, deps.now());
}

function spendResponse(exchange: Exchange, budgets: ByteBudgets, nowMs: number): void {
  const cap = exchange.decision?.responseCap;
  if (!cap || exchange.responseLimit === undefined) return;
  budgets.spend(
    capKey(exchange.principal ?? UNAUTHENTICATED_CALLER, cap.route),
    exchange.responseBytes ?? 0,
    cap.perMs,
    nowMs,
  );
}
