import { createServer, type IncomingMessage, type Server } from 'node:http';
import type { Socket } from 'node:net';
import type { Duplex } from 'node:stream';
import { setTimeout as sleep } from 'node:timers/promises';
import httpProxy from 'http-proxy';
import { closeServer, listen } from '../../common/listen.ts';
import type { Logger } from '../../common/log.ts';
import { outboundChain } from '../filters/chains.ts';
import { forwardRequest } from '../http/forward.ts';
import {
  OUTBOUND_HEADER_RULES,
  type RequestHeaderRules,
  scrubRequestHeadersInPlace,
  upstreamRequestHeaders,
} from '../http/headers.ts';
import { sendLocalReply, writeLocalReplyToSocket } from '../http/local-reply.ts';
import type { Svid } from '../identity/svid.ts';
import { Balancer, RetryBudget } from '../outbound/balancer.ts';
import { MeshConnections } from '../outbound/mesh-connections.ts';
import type { Endpoint } from '../outbound/service-directory.ts';
import type { SnapshotState } from '../policy/snapshot-state.ts';
import type { ExchangeObserver } from '../telemetry/exchange-observer.ts';
import type { SidecarMetrics } from '../telemetry/metrics.ts';
import { failTunnel, serveExchanges } from './serve-exchanges.ts';

const NO_HEADERS: readonly string[] = Object.freeze([]);

export interface OutboundOptions {
  readonly svid: Svid;
  readonly state: SnapshotState;
  readonly logger: Logger;
  readonly metrics: SidecarMetrics;
  /** What records each request (attempts to leave the mesh, tracing). */
  readonly observers: readonly ExchangeObserver[];
  /** Requests are traced here: the trace context sent on is this sidecar's span's. */
  readonly traced: boolean;
  /** The clock of ejections and the retry budget (default Date.now). */
  readonly now?: () => number;
}

/** `namespace/name` of a service, once per snapshot's endpoint list (a metrics label). */
const serviceNames = new WeakMap<readonly Endpoint[], string>();
function serviceNameOf(service: readonly Endpoint[]): string {
  let name = serviceNames.get(service);
  if (name === undefined) {
    name = `${service[0]!.namespace}/${service[0]!.service}`;
    serviceNames.set(service, name);
  }
  return name;
}

/** A request that failed this way may go to another endpoint: the endpoint, not the request, failed. */
const GATEWAY_FAILURES = new Set([502, 503, 504]);
/** Attempts after the first. */
const MAX_RETRIES = 2;
const BACKOFF_BASE_MS = 25;

/** Full jitter (AWS's): anywhere up to 25 ms, then 50 ms, so retries of one outage do not march in step. */
const backoffMs = (attempt: number) => Math.random() * BACKOFF_BASE_MS * 2 ** attempt;

/**
 * Retried only when sending it twice is harmless and possible: an
 * idempotent method (RFC 9110 9.2.2) and no body (a streamed body is gone
 * once sent).
 */
function isReplayable(req: IncomingMessage): boolean {
  const method = req.method;
  if (
    method !== 'GET' &&
    method !== 'HEAD' &&
    method !== 'OPTIONS' &&
    method !== 'DELETE' &&
    method !== 'PUT'
  )
    return false;
  const length = req.headers['content-length'];
  return req.headers['transfer-encoding'] === undefined && (length === undefined || length === '0');
}

/**
 * The outbound listener (15001, loopback only): the app's plain HTTP egress,
 * as an explicit proxy (absolute-form targets) or by Host header. Each
 * request is resolved to a peer sidecar from the registry and sent over mTLS
 * that must prove the destination's SPIFFE ID.
 */
export class OutboundListener {
  readonly server: Server;
  readonly #connections: MeshConnections;
  readonly #proxy: httpProxy;
  readonly #balancer: Balancer;
  readonly #budget: RetryBudget;

  constructor(options: OutboundOptions) {
    const { state, logger, metrics } = options;
    this.#connections = new MeshConnections(options.svid, (spiffeId) =>
      state.current?.revoked.get(spiffeId),
    );
    const chain = outboundChain({ state });
    this.#balancer = new Balancer({ ...(options.now ? { now: options.now } : {}) });
    this.#budget = new RetryBudget({ ...(options.now ? { now: options.now } : {}) });
    const headerRules: RequestHeaderRules = options.traced
      ? Object.freeze({ ...OUTBOUND_HEADER_RULES, replaceTraceContext: true })
      : OUTBOUND_HEADER_RULES;
    this.#proxy = httpProxy.createProxyServer({ ws: true });
    this.#proxy.on('error', (error, _req, socket) =>
      failTunnel(socket as Duplex, error, logger, 'outbound'),
    );

    this.server = createServer();
    serveExchanges(this.server, {
      direction: 'outbound',
      chain,
      metrics,
      logger,
      observers: options.observers,
      forward: async (exchange, res) => {
        const { req } = exchange;
        const target = exchange.target!;
        const service = exchange.service!;
        const serviceName = serviceNameOf(service);
        // No client address: the app's own X-Forwarded-For and the like pass as it wrote them.
        const headers = upstreamRequestHeaders(
          req.rawHeaders,
          req.headers.connection,
          headerRules,
          undefined,
          exchange.traceHeaders ?? NO_HEADERS,
        );
        const replayable = isReplayable(req);
        this.#budget.request();
        let avoid: Endpoint | undefined;
        for (let attempt = 0; ; attempt++) {
          const destination = this.#balancer.pick(service, avoid);
          exchange.destination = destination;
          this.#balancer.started(destination);
          const result = await forwardRequest(
            this.#connections.poolFor(destination),
            req,
            res,
            target.path + target.search,
            headers,
            { retryable: replayable && attempt < MAX_RETRIES },
          );
          const failed = GATEWAY_FAILURES.has(result.status);
          metrics.upstreamRequests.inc(serviceName, destination.address, failed ? 'failed' : 'ok');
          if (this.#balancer.finished(destination, failed, service)) {
            metrics.upstreamEjections.inc(serviceName, destination.address);
            logger.warn('endpoint ejected after consecutive failures', {
              service: serviceName,
              endpoint: destination.address,
              ...this.#balancer.describe([destination])[0],
            });
          }
          if (result.retry) {
            if (this.#budget.tryRetry()) {
              metrics.upstreamRetries.inc(serviceName, 'retried');
              avoid = destination;
              await sleep(backoffMs(attempt));
              continue;
            }
            metrics.upstreamRetries.inc(serviceName, 'budget-exhausted');
            sendLocalReply(res, result.failure!);
          }
          exchange.responseBytes = result.responseBytes;
          if (result.failure) {
            logger.warn('outbound request failed', {
              destination: destination.address,
              expected: destination.spiffeId,
              code: result.failure.code,
              reason: result.failure.message,
              attempts: attempt + 1,
            });
          }
          return result.status;
        }
      },
      tunnel: (exchange, socket, head) => {
        const destination = this.#balancer.pick(exchange.service!);
        exchange.destination = destination;
        scrubRequestHeadersInPlace(
          exchange.req.headers,
          headerRules,
          undefined,
          exchange.traceHeaders ?? NO_HEADERS,
        );
        this.#proxy.ws(exchange.req, socket, head, {
          target: `https://${destination.address}`,
          agent: this.#connections.agentFor(destination),
          secure: true,
        });
      },
    });

    // CONNECT would hand the app an opaque tunnel the sidecar cannot route or
    // authorize by service; mesh calls are plain HTTP to this listener.
    this.server.on('connect', (_req: IncomingMessage, socket: Socket) => {
      writeLocalReplyToSocket(socket, {
        status: 405,
        code: 'POSTERN_CONNECT_NOT_SUPPORTED',
        message:
          'CONNECT tunnels are not supported; send plain HTTP and the sidecar originates mTLS',
      });
    });
  }

  listen(port: number, host: string): Promise<number> {
    return listen(this.server, port, host);
  }

  setCertificate(svid: Svid): void {
    this.#connections.setCertificate(svid);
  }

  /** After a snapshot: drop connections to, and the balancer's memory of, endpoints that left the registry. */
  retainOnly(endpoints: readonly Endpoint[]): void {
    this.#connections.retainOnly(endpoints);
    this.#balancer.retainOnly(endpoints);
  }

  /** For /config: each endpoint and its state (active or ejected, in flight, failures). */
  describeEndpoints(endpoints: readonly Endpoint[]): object[] {
    return this.#balancer.describe(endpoints);
  }

  /** After a snapshot revoked these identities: re-handshake with their endpoints. */
  dropIdentities(spiffeIds: ReadonlySet<string>): void {
    this.#connections.dropIdentities(spiffeIds);
  }

  async close(): Promise<void> {
    await closeServer(this.server);
    this.#proxy.close();
    await this.#connections.close();
  }
}
