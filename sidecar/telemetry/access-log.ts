/**
 * The access log: one JSON line per request (pino), like Envoy's access log
 * in JSON format. pino serialises the line on the request path (a few
 * microseconds); writing is asynchronous (sonic-boom, sync: false), so a
 * slow disk or pipe never holds a request, and batched: lines gather up to
 * BATCH_BYTES or FLUSH_MS, whichever comes first (a write per line cost the
 * sidecar 19 µs of CPU a request at saturation). Loaded only when a sidecar
 * keeps one (--access-log).
 */
import pino from 'pino';
import type { ExchangeObserver } from './exchange-observer.ts';
import { requestBodyBytes } from './exchange-observer.ts';

// Below sonic-boom's 16 KiB maximum write, which it must be.
const BATCH_BYTES = 8 * 1024;
const FLUSH_MS = 1000;

export interface AccessLog {
  /** The observer of one listener's requests. */
  observer(direction: 'inbound' | 'outbound' | 'gateway'): ExchangeObserver;
  /** Writes what is buffered and closes the file. */
  close(): void;
}

/** `target`: `stdout`, `stderr`, or a file path (appended to). */
export function openAccessLog(
  target: string,
  base: { readonly workload: string; readonly pod: string },
): AccessLog {
  const destination = pino.destination({
    dest: target === 'stdout' ? 1 : target === 'stderr' ? 2 : target,
    sync: false,
    mkdir: true,
    minLength: BATCH_BYTES,
  });
  // A quiet sidecar's last lines still reach the file within FLUSH_MS.
  const flusher = setInterval(() => {
    // Not before the file is open: sonic-boom throws until it is.
    try {
      destination.flush();
    } catch {}
  }, FLUSH_MS);
  flusher.unref();
  const log = pino(
    {
      base,
      timestamp: pino.stdTimeFunctions.isoTime,
      formatters: { level: (label) => ({ level: label }) },
    },
    destination,
  );
  return {
    observer: (direction) => ({
      end(exchange, status) {
        const decision = exchange.decision;
        const span = exchange.span?.spanContext();
        log.info({
          direction,
          method: exchange.req.method,
          // The canonical path the policy judged and the app received; the raw target when it never got one.
          path: exchange.target?.path ?? exchange.req.url,
          status,
          durationMs: Math.round((performance.now() - exchange.startedAt) * 1000) / 1000,
          requestBytes: requestBodyBytes(exchange),
          responseBytes: exchange.responseBytes ?? 0,
          client: exchange.req.socket.remoteAddress,
          principal: exchange.principal,
          subject: typeof exchange.claims?.sub === 'string' ? exchange.claims.sub : undefined,
          policy: decision?.policy,
          route: decision?.route,
          decision: decision ? (decision.allowed ? 'allow' : 'deny') : undefined,
          reason: decision?.reason,
          mode: decision?.mode,
          rateLimit: exchange.rateLimit,
          exfiltration: exchange.exfiltration,
          upstream: exchange.destination?.address ?? exchange.unknownDestination,
          traceId: span?.traceId,
          spanId: span?.spanId,
        });
      },
    }),
    close() {
      clearInterval(flusher);
      // end() writes what is queued, once the file is open if it is not yet.
      destination.end();
    },
  };
}
