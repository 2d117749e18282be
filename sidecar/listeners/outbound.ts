import { createServer, type Server } from 'node:http';
import {
  type ConnectionLimits,
  capConnections,
  cutIdleStreams,
  OUTBOUND_LIMITS,
  timeoutOptions,
} from '../../common/connection-limits.ts';
import { closeServer, drainServer, listen } from '../../common/listen.ts';
import type { ListenerParts } from '../data-plane.ts';
import { outboundChain } from '../filters/chains.ts';
import {
  OUTBOUND_HEADER_RULES,
  type RequestHeaderRules,
  scrubRequestHeadersInPlace,
  upstreamRequestHeaders,
} from '../http/headers.ts';
import { MeshUpstreams } from '../upstream/mesh-upstreams.ts';
import { serveExchanges } from './serve-exchanges.ts';

const NO_HEADERS: readonly string[] = Object.freeze([]);

/** What the outbound listener uses of the parts; the clock (of ejections and the retry budget) defaults to Date.now. */
export type OutboundOptions = Pick<
  ListenerParts,
  'svid' | 'state' | 'logger' | 'metrics' | 'observers' | 'traced' | 'upstream' | 'overload'
> &
  Partial<Pick<ListenerParts, 'now'>> & {
    /** What one app connection and request may hold (default OUTBOUND_LIMITS). */
    readonly limits?: ConnectionLimits;
  };

/**
 * The outbound listener (15001, loopback only): the app's plain HTTP egress,
 * as an explicit proxy (absolute-form targets) or by Host header. Each
 * request is resolved to a peer sidecar from the registry and sent over mTLS
 * that must prove the destination's SPIFFE ID.
 */
export class OutboundListener {
  readonly server: Server;
  /** Peer sidecars over mTLS: the data plane hands it renewed SVIDs, registry changes and revocations. */
  readonly upstreams: MeshUpstreams;

  constructor(options: OutboundOptions) {
    const { state, logger, metrics } = options;
    const upstreams = MeshUpstreams.forListener(options, 'outbound');
    this.upstreams = upstreams;
    const limits = options.limits ?? OUTBOUND_LIMITS;
    const chain = outboundChain({
      state,
      maxHeaders: limits.maxHeaders,
      overload: options.overload,
    });
    const headerRules: RequestHeaderRules = options.traced
      ? Object.freeze({ ...OUTBOUND_HEADER_RULES, replaceTraceContext: true })
      : OUTBOUND_HEADER_RULES;

    this.server = createServer(timeoutOptions(limits));
    capConnections(this.server, limits, logger, 'outbound');
    cutIdleStreams(this.server, limits);
    serveExchanges(this.server, {
      limits,
      direction: 'outbound',
      chain,
      metrics,
      logger,
      observers: options.observers,
      forward: async (exchange, res) => {
        const { req } = exchange;
        const target = exchange.target!;
        // No client address: the app's own X-Forwarded-For and the like pass as it wrote them.
        const headers = upstreamRequestHeaders(
          req.rawHeaders,
          req.headers.connection,
          headerRules,
          undefined,
          exchange.traceHeaders ?? NO_HEADERS,
        );
        const result = await upstreams.call(exchange, res, {
          service: exchange.service!,
          path: target.path + target.search,
          headers,
        });
        return result.status;
      },
      tunnel: (exchange, socket, head) => {
        scrubRequestHeadersInPlace(
          exchange.req.headers,
          headerRules,
          undefined,
          exchange.traceHeaders ?? NO_HEADERS,
        );
        upstreams.tunnel(exchange, exchange.service!, socket, head);
      },
    });
  }

  listen(port: number, host: string): Promise<number> {
    return listen(this.server, port, host);
  }

  /** Stops accepting and lets open requests finish (see drainServer); resolves with the connections cut at the end. */
  drain(graceMs: number): Promise<number> {
    return drainServer(this.server, [this.server], graceMs);
  }

  async close(): Promise<void> {
    await closeServer(this.server);
    await this.upstreams.close();
  }
}
