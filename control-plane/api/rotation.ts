import { BadRequestBodyError, readJsonBody, sendJson } from '../../common/http-json.ts';
import { parseDuration } from '../../common/units.ts';
import { DEFAULT_PROPAGATION_MS } from '../root-rotation.ts';
import { operatorIdentity } from './caller.ts';
import type { ApiContext, Handler, Routes } from './context.ts';

const MAX_BODY_BYTES = 1024;

/** The propagation time a start request asks for (Kubernetes notation), or the default. */
async function propagationOf(req: Parameters<Handler>[0]): Promise<number> {
  const body = (await readJsonBody(req, MAX_BODY_BYTES)) as { propagation?: unknown } | null;
  if (body === null || typeof body !== 'object' || Array.isArray(body))
    throw new BadRequestBodyError(400, 'expected {"propagation"?: "5m"}');
  if (body.propagation === undefined) return DEFAULT_PROPAGATION_MS;
  try {
    if (typeof body.propagation !== 'string') throw new Error('expected a string');
    return parseDuration(body.propagation);
  } catch (error) {
    throw new BadRequestBodyError(400, `propagation: ${(error as Error).message}`);
  }
}

/**
 * The mesh root rotation, for operators (see root-rotation.ts):
 * GET /v1/trust-bundle/rotation shows where it stands, POST starts one,
 * POST .../activate makes the prepared root sign without waiting for
 * sidecars. Starting or switching twice is refused (409), not repeated.
 */
export function rotationRoutes(ctx: ApiContext): Routes {
  const { rotation, logger } = ctx;

  const status: Handler = async (req, res) => {
    operatorIdentity(req, ctx.operators, 'the root rotation status');
    sendJson(res, 200, rotation.status());
  };

  const start: Handler = async (req, res) => {
    const operator = operatorIdentity(req, ctx.operators, 'starting a root rotation');
    const propagationMs = await propagationOf(req);
    logger.info('root rotation requested', { operator, propagationMs });
    sendJson(res, 200, await rotation.start(propagationMs));
  };

  const activate: Handler = async (req, res) => {
    const operator = operatorIdentity(req, ctx.operators, 'switching to the new root');
    logger.info('root switch requested', { operator });
    sendJson(res, 200, await rotation.activate());
  };

  return {
    'GET /v1/trust-bundle/rotation': status,
    'POST /v1/trust-bundle/rotation': start,
    'POST /v1/trust-bundle/rotation/activate': activate,
  };
}
