import { unmappedAddress } from '../../common/address.ts';
import { ForbiddenError } from '../../common/errors.ts';
import { BadRequestBodyError, readJsonBody, sendJson } from '../../common/http-json.ts';
import { parseUsageReport } from '../../common/usage.ts';
import { operatorIdentity, refuseRevoked, workloadCaller } from './caller.ts';
import type { ApiContext, Handler, Routes } from './context.ts';

/** A window's report from one busy pod: thousands of entries fit. */
const MAX_REPORT_BYTES = 4 * 1024 * 1024;
const DEFAULT_ALERTS = 100;
const MAX_ALERTS = 1000;

/**
 * POST /v1/usage (a sidecar's usage report for one window, DESIGN.md) and
 * GET /v1/alerts (what the detectors found, newest first, for operators).
 * A sidecar reports only for the workload its SVID was issued for; the
 * reports of every replica meet in the detection engine.
 */
export function usageRoutes(ctx: ApiContext): Routes {
  const { detection } = ctx;

  const report: Handler = async (req, res) => {
    const caller = workloadCaller(req, 'usage reports');
    refuseRevoked(req, caller.spiffeId, ctx.revokedUpTo);
    const parsed = parseUsageReport(await readJsonBody(req, MAX_REPORT_BYTES));
    if (!parsed.ok) {
      throw new BadRequestBodyError(
        400,
        `not a usage report: ${parsed.problems.slice(0, 10).join('; ')}`,
      );
    }
    const { source } = parsed.report;
    if (source.workload !== caller.workload || source.namespace !== caller.namespace) {
      throw new ForbiddenError(
        `the certificate of ${caller.spiffeId} was issued for ${caller.namespace}/${caller.workload}; it cannot report for ${source.namespace}/${source.workload}`,
      );
    }
    // Who reports and from where are the connection's to state, not the
    // report's: they tell the off-workload detector where this identity runs.
    const address = unmappedAddress(req.socket.remoteAddress);
    try {
      await ctx.detectionInput.report({
        ...parsed.report,
        source: {
          ...source,
          principal: caller.spiffeId,
          ...(address ? { address } : {}),
        },
      });
    } catch (error) {
      // The shared log (Redis) did not take it: the sidecar keeps the report and sends it again.
      ctx.logger.warn('usage report not taken: the shared detection log failed', { error });
      sendJson(res, 503, {
        error: {
          code: 'POSTERN_DETECTION_UNAVAILABLE',
          message: 'the shared detection log did not take the report; send it again later',
        },
      });
      return;
    }
    res.writeHead(204).end();
  };

  const list: Handler = async (req, res, url) => {
    operatorIdentity(req, ctx.operators, 'the alert list');
    const asked = url.searchParams.get('limit');
    const limit = asked === null ? DEFAULT_ALERTS : Number(asked);
    if (!Number.isInteger(limit) || limit < 1 || limit > MAX_ALERTS) {
      throw new BadRequestBodyError(400, `limit: expected a whole number from 1 to ${MAX_ALERTS}`);
    }
    sendJson(res, 200, {
      alerts: detection.alerts.newest(limit),
      total: detection.alerts.total,
      lateReports: detection.engine.lateReports,
      evictedHistories: detection.engine.evictedHistories,
    });
  };

  return { 'POST /v1/usage': report, 'GET /v1/alerts': list };
}
