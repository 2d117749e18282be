import { BadRequestBodyError, sendJson } from '../../common/http-json.ts';
import { operatorIdentity } from './caller.ts';
import type { ApiContext, Handler, Routes } from './context.ts';

const TARGET = ['principal', 'workload', 'route'] as const;

/**
 * GET /v1/blocks (callers blocked after exfiltration alerts, for operators)
 * and DELETE /v1/blocks?principal=P&workload=NS/NAME&route=R (an operator
 * clears one; 404 when there is no such block). The sidecars of the
 * workload learn of either in their next snapshot.
 */
export function blockRoutes(ctx: ApiContext): Routes {
  const { blocks, logger } = ctx;

  const list: Handler = async (req, res) => {
    operatorIdentity(req, ctx.operators, 'the block list');
    sendJson(res, 200, { blocks: blocks.list() });
  };

  const clear: Handler = async (req, res, url) => {
    const operator = operatorIdentity(req, ctx.operators, 'clearing a block');
    const missing = TARGET.filter((name) => !url.searchParams.get(name));
    if (missing.length) {
      throw new BadRequestBodyError(
        400,
        `name the block to clear: ${missing.join(', ')} missing (query parameters principal, workload as namespace/name, route)`,
      );
    }
    const [principal, workload, route] = TARGET.map((name) => url.searchParams.get(name)!) as [
      string,
      string,
      string,
    ];
    if (!(await ctx.detectionInput.clear({ principal, workload, route }))) {
      sendJson(res, 404, {
        error: {
          code: 'POSTERN_NO_SUCH_BLOCK',
          message: `${principal} is not blocked on ${workload} route ${route}`,
        },
      });
      return;
    }
    logger.warn('block cleared by an operator', { operator, principal, workload, route });
    res.writeHead(204).end();
  };

  return { 'GET /v1/blocks': list, 'DELETE /v1/blocks': clear };
}
