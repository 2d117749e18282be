import type { IncomingMessage, ServerResponse } from 'node:http';
import type { Duplex } from 'node:stream';
import { setTimeout as sleep } from 'node:timers/promises';
import httpProxy from 'http-proxy';
import type { UpstreamLimits } from '../../common/connection-limits.ts';
import type { Logger } from '../../common/log.ts';
import type { ListenerParts } from '../data-plane.ts';
import type { Exchange } from '../filters/filter.ts';
import { type ForwardOptions, type ForwardResult, forwardRequest } from '../http/forward.ts';
import { sendLocalReply } from '../http/local-reply.ts';
import type { Svid } from '../identity/svid.ts';
import { failTunnel } from '../listeners/serve-exchanges.ts';
import type { SidecarMetrics } from '../telemetry/metrics.ts';
import { Balancer, RetryBudget } from './balancer.ts';
import { MeshConnections } from './mesh-connections.ts';
import type { Endpoint } from './service-directory.ts';

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

/** One request to a mesh service, as a listener hands it over. */
export interface UpstreamCall {
  /** The service's endpoints (the snapshot's list, never empty). */
  readonly service: readonly Endpoint[];
  /** Origin-form target sent upstream. */
  readonly path: string;
  /** [name, value, ...] sent upstream. */
  readonly headers: string[];
  /** Response changes, caps and per-attempt timeouts, as forwardRequest takes them. */
  readonly options?: ForwardOptions;
  /** Every attempt, retries and backoff included, within this (an HTTPRoute's timeouts.request). */
  readonly timeoutMs?: number;
}

/**
 * Requests to mesh services, for the outbound listener and the gateway
 * alike: an endpoint picked by the balancer (least loaded of two random
 * choices, ejected endpoints skipped), sent over mTLS that must prove the
 * endpoint's SPIFFE ID, retried on another endpoint when the request is
 * replayable and the failure was the endpoint's (no connection, 503), within
 * a retry budget, with jittered backoff. Upgrade requests are tunnelled to
 * a picked endpoint.
 */
export class MeshUpstreams {
  readonly #connections: MeshConnections;
  readonly #balancer: Balancer;
  readonly #budget: RetryBudget;
  readonly #proxy: httpProxy;
  readonly #metrics: SidecarMetrics;
  readonly #logger: Logger;

  constructor(options: {
    svid: Svid;
    revokedUpTo: (spiffeId: string) => number | undefined;
    metrics: SidecarMetrics;
    logger: Logger;
    /** How long to wait on a peer: connect, response headers, a body that goes quiet. */
    limits: UpstreamLimits;
    /** Tells an Upgrade tunnel's client why its upstream failed. */
    onTunnelError: (error: Error, socket: Duplex) => void;
    now?: () => number;
  }) {
    this.#connections = new MeshConnections(options.svid, options.revokedUpTo, options.limits);
    const clock = options.now ? { now: options.now } : {};
    this.#balancer = new Balancer(clock);
    this.#budget = new RetryBudget(clock);
    this.#metrics = options.metrics;
    this.#logger = options.logger;
    this.#proxy = httpProxy.createProxyServer({ ws: true });
    this.#proxy.on('error', (error, _req, socket) =>
      options.onTunnelError(error, socket as Duplex),
    );
  }

  /** The upstreams of a listener of the data plane: its SVID, the snapshot's revocations, its metrics and log. */
  static forListener(
    parts: Pick<ListenerParts, 'svid' | 'state' | 'metrics' | 'logger' | 'upstream'> & {
      now?: () => number;
    },
    direction: 'outbound' | 'gateway',
  ): MeshUpstreams {
    const { state, logger } = parts;
    return new MeshUpstreams({
      svid: parts.svid,
      revokedUpTo: (spiffeId) => state.current?.revoked.get(spiffeId),
      metrics: parts.metrics,
      logger,
      limits: parts.upstream,
      onTunnelError: (error, socket) => failTunnel(socket, error, logger, direction),
      ...(parts.now ? { now: parts.now } : {}),
    });
  }

  /** Sends the request, retrying where that is safe; resolves with the last attempt's result (the status the client got). */
  async call(exchange: Exchange, res: ServerResponse, call: UpstreamCall): Promise<ForwardResult> {
    const { req } = exchange;
    const { service, path, headers } = call;
    const metrics = this.#metrics;
    const serviceName = serviceNameOf(service);
    const replayable = isReplayable(req);
    const deadline = call.timeoutMs === undefined ? undefined : performance.now() + call.timeoutMs;
    this.#budget.request();
    let avoid: Endpoint | undefined;
    for (let attempt = 0; ; attempt++) {
      const destination = this.#balancer.pick(service, avoid);
      exchange.destination = destination;
      this.#balancer.started(destination);
      const remaining =
        deadline === undefined ? undefined : Math.max(1, deadline - performance.now());
      const result = await forwardRequest(
        this.#connections.poolFor(destination),
        req,
        res,
        path,
        headers,
        attemptOptions(call.options, replayable && attempt < MAX_RETRIES, remaining),
      );
      const failed = GATEWAY_FAILURES.has(result.status);
      metrics.upstreamRequests.inc(serviceName, destination.address, failed ? 'failed' : 'ok');
      if (this.#balancer.finished(destination, failed, service)) {
        metrics.upstreamEjections.inc(serviceName, destination.address);
        this.#logger.warn('endpoint ejected after consecutive failures', {
          service: serviceName,
          endpoint: destination.address,
          ...this.#balancer.describe([destination])[0],
        });
      }
      if (result.retry) {
        const backoff = backoffMs(attempt);
        const inTime = deadline === undefined || performance.now() + backoff < deadline;
        if (inTime && this.#budget.tryRetry()) {
          metrics.upstreamRetries.inc(serviceName, 'retried');
          avoid = destination;
          await sleep(backoff);
          continue;
        }
        metrics.upstreamRetries.inc(serviceName, inTime ? 'budget-exhausted' : 'out-of-time');
        sendLocalReply(res, result.failure!, call.options?.responseHeaders);
      }
      exchange.responseBytes = result.responseBytes;
      if (result.failure) {
        this.#logger.warn('upstream request failed', {
          destination: destination.address,
          expected: destination.spiffeId,
          code: result.failure.code,
          reason: result.failure.message,
          attempts: attempt + 1,
        });
      }
      return result;
    }
  }

  /** Tunnels an Upgrade request (its headers already scrubbed in place) to an endpoint of `service`. */
  tunnel(exchange: Exchange, service: readonly Endpoint[], socket: Duplex, head: Buffer): void {
    const destination = this.#balancer.pick(service);
    exchange.destination = destination;
    this.#proxy.ws(exchange.req, socket, head, {
      target: `https://${destination.address}`,
      agent: this.#connections.agentFor(destination),
      secure: true,
    });
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
  describe(endpoints: readonly Endpoint[]): object[] {
    return this.#balancer.describe(endpoints);
  }

  /** After a snapshot revoked these identities: re-handshake with their endpoints. */
  dropIdentities(spiffeIds: ReadonlySet<string>): void {
    this.#connections.dropIdentities(spiffeIds);
  }

  async close(): Promise<void> {
    this.#proxy.close();
    await this.#connections.close();
  }
}

const RETRYABLE: ForwardOptions = Object.freeze({ retryable: true });
const FINAL: ForwardOptions = Object.freeze({ retryable: false });

/** One attempt's options: the call's, whether it may be retried, and what is left of the deadline. */
function attemptOptions(
  base: ForwardOptions | undefined,
  retryable: boolean,
  remainingMs: number | undefined,
): ForwardOptions {
  // The outbound path's common case allocates nothing.
  if (!base && remainingMs === undefined) return retryable ? RETRYABLE : FINAL;
  return {
    ...base,
    retryable,
    ...(remainingMs === undefined ? {} : { timeoutMs: remainingMs }),
  };
}
