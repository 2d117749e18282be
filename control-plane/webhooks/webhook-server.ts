import { createServer } from 'node:https';
import {
  CONTROL_PLANE_LIMITS,
  capConnections,
  timeoutOptions,
} from '../../common/connection-limits.ts';
import { closeServer, listen } from '../../common/listen.ts';
import type { Logger } from '../../common/log.ts';
import { TLS_POLICY } from '../../common/tls-policy.ts';
import { admissionHandler, type WebhookDeps } from './admission.ts';

export interface WebhookServer {
  readonly port: number;
  /** The control plane renewed its serving certificate: new handshakes get it. */
  setCertificate(tls: { cert: string; key: string }): void;
  close(): Promise<void>;
}

/**
 * The webhook port (15017): HTTPS with the control plane's serving
 * certificate (the webhook configurations' caBundle is the mesh's trust
 * bundle), no client certificate (the API server presents none unless told
 * to), the admission handlers.
 */
export async function startWebhookServer(options: {
  port: number;
  host: string;
  tls: { cert: string; key: string };
  deps: WebhookDeps;
  logger: Logger;
}): Promise<WebhookServer> {
  const { logger } = options;
  const server = createServer({
    ...options.tls,
    ...TLS_POLICY,
    ...timeoutOptions(CONTROL_PLANE_LIMITS),
  });
  capConnections(server, CONTROL_PLANE_LIMITS, logger, 'webhook', () => {});
  const handle = admissionHandler(options.deps);
  server.on('request', (req, res) => {
    handle(req, res).catch((error: unknown) => {
      logger.error('admission review failed', { error });
      if (!res.headersSent) res.writeHead(500).end();
      else res.destroy();
    });
  });
  const port = await listen(server, options.port, options.host);
  logger.info('admission webhooks listening', { webhookPort: port });
  return {
    port,
    setCertificate: (tls) => server.setSecureContext({ ...tls, ...TLS_POLICY }),
    close: () => closeServer(server),
  };
}
