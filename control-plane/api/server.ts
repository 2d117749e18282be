import type { IncomingMessage, ServerResponse } from 'node:http';
import { createServer, type Server } from 'node:https';
import {
  type ConnectionLimits,
  capConnections,
  cutIdleStreams,
  timeoutOptions,
} from '../../common/connection-limits.ts';
import {
  AuthenticationError,
  CsrRejectedError,
  ForbiddenError,
  UnavailableError,
} from '../../common/errors.ts';
import { BadRequestBodyError, sendError } from '../../common/http-json.ts';
import { TLS_POLICY } from '../../common/tls-policy.ts';
import { NoPreparedRootError, RotationInProgressError } from '../root-phases.ts';
import { ackRoutes } from './acks.ts';
import { blockRoutes } from './blocks.ts';
import { certificateRoutes } from './certificates.ts';
import type { ApiContext, Routes } from './context.ts';
import { NoWatchError, WatchLimitError } from './errors.ts';
import { rotationRoutes } from './rotation.ts';
import { snapshotRoutes } from './snapshots.ts';
import { usageRoutes } from './usage.ts';

export interface ApiServerOptions extends ApiContext {
  /** Serving certificate and key for 15010 (issued from `ca`). */
  readonly tls: { cert: string; key: string };
  readonly limits: ConnectionLimits;
}

/** The HTTP status for each failure a handler throws; anything else is a 500. */
function statusOf(error: unknown): number {
  if (error instanceof BadRequestBodyError) return error.status;
  if (error instanceof AuthenticationError) return 401;
  if (error instanceof CsrRejectedError || error instanceof ForbiddenError) return 403;
  if (
    error instanceof NoWatchError ||
    error instanceof RotationInProgressError ||
    error instanceof NoPreparedRootError
  )
    return 409;
  if (error instanceof WatchLimitError) return 429;
  if (error instanceof UnavailableError) return 503;
  return 500;
}

/**
 * The control plane's HTTPS API (port 15010), one module per resource:
 * certificates.ts, snapshots.ts, acks.ts, rotation.ts, usage.ts, blocks.ts. Each route authenticates its
 * caller itself (see caller.ts).
 */
export function createApiServer(options: ApiServerOptions): Server {
  const { logger } = options;
  const routes: Routes = {
    ...certificateRoutes(options),
    ...snapshotRoutes(options),
    ...ackRoutes(options),
    ...rotationRoutes(options),
    ...usageRoutes(options),
    ...blockRoutes(options),
  };

  const server = createServer(
    {
      ...options.tls,
      ca: options.ca.bundlePem,
      ...TLS_POLICY,
      // A sidecar's first request has no SVID yet (it brings a bootstrap
      // token), so the handshake asks for a certificate without requiring one;
      // each route checks `authorized` itself.
      requestCert: true,
      rejectUnauthorized: false,
      ...timeoutOptions(options.limits),
    },
    (req: IncomingMessage, res: ServerResponse) => {
      // Only the path and query matter; anything URL cannot parse is a bad request, not a crash.
      let url: URL;
      try {
        url = new URL(`https://control-plane${(req.url ?? '/').startsWith('/') ? req.url : '/'}`);
      } catch {
        sendError(res, 400, 'POSTERN_BAD_REQUEST', 'the request target is not a valid path');
        return;
      }
      const handler = routes[`${req.method} ${url.pathname}`];
      if (!handler) {
        sendError(res, 404, 'POSTERN_NOT_FOUND', `no route ${req.method} ${url.pathname}`);
        return;
      }
      handler(req, res, url).catch((error: unknown) => {
        const status = statusOf(error);
        const code = (error as { code?: string }).code ?? 'POSTERN_INTERNAL';
        if (status === 500) logger.error('request failed', { path: url.pathname, error });
        else
          logger.warn('request refused', {
            path: url.pathname,
            status,
            code,
            reason: (error as Error).message,
            remote: req.socket.remoteAddress,
          });
        // An unread body (413) leaves the connection mid-request: it cannot be reused.
        if (status === 413) res.setHeader('connection', 'close');
        if (!res.headersSent)
          sendError(
            res,
            status,
            code,
            status === 500 ? 'internal error' : (error as Error).message,
          );
        else res.destroy();
      });
    },
  );
  capConnections(server, options.limits, logger, 'control-plane-api');
  cutIdleStreams(server, options.limits);
  return server;
}
