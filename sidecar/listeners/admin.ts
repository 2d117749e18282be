import { createServer, type Server } from 'node:http';
import { sendJson } from '../../common/http-json.ts';

export interface AdminView {
  /** Empty when ready; otherwise what is missing, in words. */
  notReadyBecause(): string[];
  config(): unknown;
  stats(): unknown;
  metrics(): string;
}

/**
 * The admin listener (15000, loopback only): what the kubelet's readiness
 * probe and an operator ask the sidecar. It serves plain HTTP and never
 * anything the app's traffic could reach.
 */
export function createAdminServer(view: AdminView): Server {
  return createServer((req, res) => {
    const path = (req.url ?? '/').split('?')[0];
    switch (path) {
      case '/healthz/ready': {
        const missing = view.notReadyBecause();
        sendJson(res, missing.length ? 503 : 200, { ready: missing.length === 0, missing });
        return;
      }
      case '/config':
        sendJson(res, 200, view.config());
        return;
      case '/stats':
        sendJson(res, 200, view.stats());
        return;
      case '/metrics':
        res.writeHead(200, { 'content-type': 'text/plain; version=0.0.4' });
        res.end(view.metrics());
        return;
      default:
        sendJson(res, 404, {
          error: {
            code: 'POSTERN_NOT_FOUND',
            message: `no admin endpoint ${path}; try /healthz/ready, /config, /stats, /metrics`,
          },
        });
    }
  });
}
