import { createServer, type Server } from 'node:https';
import { type BlockList, isIP, type Socket } from 'node:net';
import type { TLSSocket } from 'node:tls';
import {
  type ConnectionLimits,
  capConnections,
  cutIdleStreams,
  timeoutOptions,
} from '../../common/connection-limits.ts';
import { closeServer, drainServer, listen } from '../../common/listen.ts';
import { TLS_POLICY } from '../../common/tls-policy.ts';
import type { ListenerParts } from '../data-plane.ts';
import { gatewayChain } from '../filters/chains.ts';
import { settleResponse } from '../filters/exfiltration-guard.ts';
import type { Exchange } from '../filters/filter.ts';
import { hostName } from '../filters/http-route.ts';
import type { Consumer } from '../gateway/consumers.ts';
import {
  modifyHeaders,
  modifyHeadersInPlace,
  pickBackend,
  rewrite,
} from '../gateway/route-filters.ts';
import type { ForwardOptions } from '../http/forward.ts';
import {
  type ClientAddress,
  clientAddressOf,
  DEFAULT_UNDERSCORE_ACTION,
  type RequestHeaderRules,
  scrubRequestHeadersInPlace,
  upstreamRequestHeaders,
} from '../http/headers.ts';
import { sendLocalReply } from '../http/local-reply.ts';
import { MeshUpstreams } from '../upstream/mesh-upstreams.ts';
import type { Endpoint } from '../upstream/service-directory.ts';
import { reportHandshakeFailures } from './handshake-failures.ts';
import { failTunnel, serveExchanges } from './serve-exchanges.ts';

/** The operator's server certificate (PEM), and the roots partners' client certificates must chain to. */
export interface ServerTls {
  readonly cert: string;
  readonly key: string;
  readonly clientCa?: string;
}

export interface GatewayListenerOptions extends ListenerParts {
  readonly tls: ServerTls;
  /** Lower-case name of the header API keys come in. */
  readonly apiKeyHeader: string;
  readonly consumers: () => readonly Consumer[];
  /** Peers whose X-Forwarded-For and Forwarded are kept (a load balancer in front); none by default. */
  readonly trustedProxies: BlockList | undefined;
  /** Request bodies longer than this get 413 (per HTTPRoute: the postern.dev/max-request-bytes annotation). */
  readonly maxRequestBytes: number;
  readonly limits: ConnectionLimits;
}

/** What the handshake and the socket say about a connection, once per connection. */
interface ClientFacts {
  readonly client: ClientAddress;
  /** The peer is a configured trusted proxy: what it says of earlier hops stands. */
  readonly trusted: boolean;
  /** CN of a client certificate verified against --client-ca. */
  readonly commonName: string | undefined;
}

const NO_BACKEND = {
  status: 500,
  code: 'POSTERN_NO_BACKEND',
  message: 'the matching HTTPRoute rule has no backend with a weight above 0',
} as const;

/**
 * The rightmost address a trusted proxy put in X-Forwarded-For: the client
 * as the proxy saw it (anything left of it is what that client claimed).
 */
function forwardedClient(header: string | string[] | undefined): string | undefined {
  const list = Array.isArray(header) ? header.join(',') : header;
  if (!list) return undefined;
  const last = list.slice(list.lastIndexOf(',') + 1).trim();
  return isIP(last) ? last : undefined;
}

/**
 * The gateway's listener (8443): TLS with the operator's certificate for
 * clients outside the mesh (optionally asking partners for client
 * certificates), the gateway filter chain (HTTPRoute routing, API keys,
 * JWT, the RoutePolicies that select the gateway), then the chosen
 * backend service over mesh mTLS as the gateway's own SPIFFE ID, balanced
 * and retried as the outbound path is (MeshUpstreams).
 *
 * Client-address headers are the gateway's to state: X-Forwarded-For,
 * Forwarded and X-Forwarded-Host from a client are dropped, unless the peer
 * is a trusted proxy, whose X-Forwarded-For and Forwarded are kept and whose
 * last X-Forwarded-For address is the client policy sees. Then the peer's
 * address is appended, as the sidecar does inbound, and X-Forwarded-Host
 * is the Host the client asked for.
 */
export class GatewayListener {
  readonly server: Server;
  /** Backends over mesh mTLS: the data plane hands it renewed SVIDs, registry changes and revocations. */
  readonly upstreams: MeshUpstreams;
  readonly #clients = new WeakMap<Socket, ClientFacts>();
  readonly #clientCa: string | undefined;

  constructor(options: GatewayListenerOptions) {
    const { state, logger, metrics } = options;
    this.#clientCa = options.tls.clientCa;
    const upstreams = MeshUpstreams.forListener(options, 'gateway');
    this.upstreams = upstreams;
    const headerRules: RequestHeaderRules = Object.freeze({
      underscores: DEFAULT_UNDERSCORE_ACTION,
      replaceTraceContext: options.traced,
    });
    const keyHeader = options.apiKeyHeader;
    // A client's forwarding claims go (frameworks build URLs and redirects from them), and so
    // does its API key: a secret for the gateway, not the backend. So do the
    // path overrides some frameworks obey over the request line (Symfony and
    // IIS read X-Original-URL, X-Rewrite-URL: a path policy never judged)
    // and the client-address claims of CDNs and load balancers.
    const claims = [
      'x-forwarded-host',
      'x-forwarded-port',
      'x-forwarded-prefix',
      'x-forwarded-server',
      'x-original-url',
      'x-rewrite-url',
      'true-client-ip',
      'x-client-ip',
      'x-cluster-client-ip',
    ];
    const untrustedDrop = new Set(['x-forwarded-for', 'forwarded', ...claims, keyHeader]);
    // A trusted proxy's own forwarding claims stand, but for the host (the
    // gateway states the Host it was asked for) and the path overrides,
    // which a CDN passes on from its client unread.
    const trustedDrop = new Set(['x-forwarded-host', 'x-original-url', 'x-rewrite-url', keyHeader]);

    this.server = createServer({
      ...this.#secureContextOptions(options.tls),
      ...TLS_POLICY,
      // Partners may present a certificate; others need none. One that is presented must verify (below).
      requestCert: options.tls.clientCa !== undefined,
      rejectUnauthorized: false,
      ...timeoutOptions(options.limits),
    });
    cutIdleStreams(this.server, options.limits);
    capConnections(this.server, options.limits, logger, 'gateway', () =>
      metrics.connectionsRefused.inc('gateway'),
    );
    this.server.on('secureConnection', (socket: TLSSocket) => {
      let commonName: string | undefined;
      if (options.tls.clientCa !== undefined) {
        const cert = socket.getPeerCertificate();
        if (cert?.raw) {
          if (!socket.authorized) {
            metrics.handshakeFailures.inc('gateway');
            logger.info('client certificate refused', {
              remote: socket.remoteAddress,
              reason: String(socket.authorizationError),
            });
            socket.destroy();
            return;
          }
          const cn = cert.subject?.CN;
          commonName = Array.isArray(cn) ? cn[0] : cn;
        }
      }
      const trusted =
        options.trustedProxies !== undefined &&
        socket.remoteAddress !== undefined &&
        options.trustedProxies.check(
          socket.remoteAddress,
          socket.remoteFamily === 'IPv6' ? 'ipv6' : 'ipv4',
        );
      this.#clients.set(socket, {
        client: clientAddressOf(socket.remoteAddress, 'https'),
        trusted,
        commonName,
      });
    });
    reportHandshakeFailures(this.server, 'gateway', logger, metrics);

    const factsOf = (exchange: Exchange): ClientFacts =>
      this.#clients.get(exchange.req.socket) ?? {
        client: clientAddressOf(exchange.req.socket.remoteAddress, 'https'),
        trusted: false,
        commonName: undefined,
      };
    const chain = gatewayChain({
      ...options,
      apiKeyHeader: keyHeader,
      certificateOf: (socket) => this.#clients.get(socket)?.commonName,
      clientAddressOf: (req) => {
        const facts = this.#clients.get(req.socket);
        return facts?.trusted
          ? (forwardedClient(req.headers['x-forwarded-for']) ?? facts.client.ip)
          : facts?.client.ip;
      },
      headerRules,
      maxHeaders: options.limits.maxHeaders,
    });
    /** What each request drops and adds on its way to the backend. */
    const dropFor = (exchange: Exchange, facts: ClientFacts): ReadonlySet<string> => {
      const base = facts.trusted ? trustedDrop : untrustedDrop;
      return exchange.dropHeaders ? new Set([...base, ...exchange.dropHeaders]) : base;
    };
    const addFor = (exchange: Exchange, host: string): string[] => {
      const add = ['x-forwarded-host', host];
      if (exchange.addHeaders) add.push(...exchange.addHeaders);
      if (exchange.traceHeaders) add.push(...exchange.traceHeaders);
      return add;
    };
    /** The backend's endpoints, or the reply that says there are none. */
    const backendOf = (exchange: Exchange): readonly Endpoint[] | typeof NO_BACKEND | string => {
      const backend = pickBackend(exchange.httpRoute!.backends);
      if (!backend) return NO_BACKEND;
      const name = `${backend.service}.${backend.namespace}`;
      return state.current?.directory.resolve(name) ?? name;
    };

    serveExchanges(this.server, {
      limits: options.limits,
      direction: 'gateway',
      chain,
      metrics,
      logger,
      observers: options.observers,
      forward: async (exchange, res) => {
        const { req } = exchange;
        const match = exchange.httpRoute!;
        const service = backendOf(exchange);
        if (typeof service === 'string' || !Array.isArray(service)) {
          const reply =
            typeof service === 'string'
              ? {
                  status: 503,
                  code: 'POSTERN_NO_ENDPOINTS',
                  message: `no endpoint of ${service} is registered with the control plane, or this gateway may not call it`,
                }
              : NO_BACKEND;
          sendLocalReply(res, reply, exchange.responseHeaders);
          return reply.status;
        }
        const target = exchange.target!;
        const host = req.headers.host ?? '';
        const rewritten = rewrite(match, target.path, hostName(req));
        const facts = factsOf(exchange);
        let headers = upstreamRequestHeaders(
          req.rawHeaders,
          req.headers.connection,
          headerRules,
          facts.client,
          addFor(exchange, host),
          dropFor(exchange, facts),
        );
        if (rewritten.host !== hostName(req)) {
          headers = modifyHeaders(headers, { set: [{ name: 'host', value: rewritten.host }] });
        }
        if (match.requestHeaders) headers = modifyHeaders(headers, match.requestHeaders);
        const result = await upstreams.call(exchange, res, {
          service: service as readonly Endpoint[],
          path: rewritten.path + target.search,
          headers,
          options: forwardOptions(exchange, match.forward),
          ...(match.timeoutMs === undefined ? {} : { timeoutMs: match.timeoutMs }),
        });
        settleResponse(exchange, result.overCap, options);
        return result.status;
      },
      tunnel: (exchange, socket, head) => {
        const service = backendOf(exchange);
        if (typeof service === 'string' || !Array.isArray(service)) {
          failTunnel(socket, new Error(`no endpoint for ${String(service)}`), logger, 'gateway');
          return;
        }
        const { req } = exchange;
        const match = exchange.httpRoute!;
        const facts = factsOf(exchange);
        const host = req.headers.host ?? '';
        scrubRequestHeadersInPlace(
          req.headers,
          headerRules,
          facts.client,
          addFor(exchange, host),
          dropFor(exchange, facts),
        );
        // The rule applies to an upgrade as to any request: its rewrite and its header changes.
        const target = exchange.target!;
        const rewritten = rewrite(match, target.path, hostName(req));
        req.url = rewritten.path + target.search;
        if (rewritten.host !== hostName(req)) req.headers.host = rewritten.host;
        if (match.requestHeaders) modifyHeadersInPlace(req.headers, match.requestHeaders);
        upstreams.tunnel(exchange, service as readonly Endpoint[], socket, head);
      },
    });
  }

  #secureContextOptions(tls: ServerTls) {
    return { cert: tls.cert, key: tls.key, ...(tls.clientCa ? { ca: tls.clientCa } : {}) };
  }

  listen(port: number, host: string): Promise<number> {
    return listen(this.server, port, host);
  }

  /** The operator renewed the server certificate: new handshakes get it, open connections carry on. */
  setServerCertificate(tls: Pick<ServerTls, 'cert' | 'key'>): void {
    this.server.setSecureContext({
      ...this.#secureContextOptions({ ...tls, clientCa: this.#clientCa }),
      ...TLS_POLICY,
    });
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

/** The rule's forward options with what this request earned: RateLimit and CORS headers, an exfiltration cap. */
function forwardOptions(exchange: Exchange, base: ForwardOptions | undefined): ForwardOptions {
  const earned = exchange.responseHeaders;
  const set = base?.responseHeaders;
  return {
    ...base,
    ...(earned || set ? { responseHeaders: [...(set ?? []), ...(earned ?? [])] } : {}),
    ...(exchange.responseLimit === undefined ? {} : { maxResponseBytes: exchange.responseLimit }),
    ...(exchange.requestLimit === undefined ? {} : { maxRequestBytes: exchange.requestLimit }),
  };
}
