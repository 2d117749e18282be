import type { Server as TlsServer } from 'node:tls';
import type { Logger } from '../../common/log.ts';
import { LogThrottle } from '../../common/log-throttle.ts';
import type { SidecarMetrics } from '../telemetry/metrics.ts';

/**
 * Counts every failed TLS handshake on a listener and logs them paced: a
 * scanner or a handshake flood costs a counter increment each, not a log
 * line each.
 */
export function reportHandshakeFailures(
  server: TlsServer,
  listener: 'inbound' | 'gateway',
  logger: Logger,
  metrics: SidecarMetrics,
): void {
  const throttle = new LogThrottle();
  server.on('tlsClientError', (error, socket) => {
    metrics.handshakeFailures.inc(listener);
    const failures = throttle.due();
    if (failures === undefined) return;
    logger.info('TLS handshake refused', {
      listener,
      remote: socket.remoteAddress,
      error,
      refusedSinceLastLine: failures,
    });
  });
}
