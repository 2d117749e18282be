import { createServer as createHttpServer, type Server as HttpServer } from 'node:http';
import { createServer, type Server } from 'node:https';
import { createServer as createNetServer, type Server as NetServer, type Socket } from 'node:net';
import type { Duplex } from 'node:stream';
import type { TLSSocket } from 'node:tls';
import httpProxy from 'http-proxy';
import { Pool } from 'undici';
import { PeerIdentityCache } from '../../certs/peer-identity.ts';
import {
  type ConnectionLimits,
  capConnections,
  cutIdleStreams,
  timeoutOptions,
  upstreamPoolOptions,
} from '../../common/connection-limits.ts';
import { closeServer, drainServer, listen } from '../../common/listen.ts';
import { isRevokedCertificate } from '../../common/revocation.ts';
import { parseSpiffeId } from '../../common/spiffe.ts';
import { TLS_POLICY } from '../../common/tls-policy.ts';
import type { ListenerParts } from '../data-plane.ts';
import type { PeerCredential } from '../filters/authenticate-peer.ts';
import { inboundChain } from '../filters/chains.ts';
import { settleResponse } from '../filters/exfiltration-guard.ts';
import type { Exchange } from '../filters/filter.ts';
import { forwardRequest } from '../http/forward.ts';
import {
  AUDIT_HEADER,
  CLIENT_CERT_HEADER,
  type ClientAddress,
  clientAddressOf,
  DEFAULT_UNDERSCORE_ACTION,
  IDENTITY_HEADER,
  type RequestHeaderRules,
  scrubRequestHeadersInPlace,
  type UnderscoreAction,
  upstreamRequestHeaders,
} from '../http/headers.ts';
import { refuseHandshake } from '../identity/peer-verification.ts';
import { type Svid, tlsOptionsOf } from '../identity/svid.ts';
import { routeByFirstByte } from './first-byte.ts';
import { reportHandshakeFailures } from './handshake-failures.ts';
import { type ExchangeHandlers, failTunnel, serveExchanges } from './serve-exchanges.ts';

export interface InboundOptions extends ListenerParts {
  readonly appHost: string;
  readonly appPort: number;
  /** Connection cap and timeouts for callers that have not proven anything yet. */
  readonly limits: ConnectionLimits;
  /** --headers-with-underscores; allow when not given. */
  readonly headersWithUnderscores?: UnderscoreAction;
}

/** What the handshake proved about a connection, computed once per connection. */
interface PeerFacts extends PeerCredential {
  /** Envoy's x-forwarded-client-cert value: who we are, the peer certificate's hash, who the peer is (none in plaintext). */
  readonly xfcc: string | undefined;
  /** The peer's address as X-Forwarded-For, Forwarded and X-Real-IP state it. */
  readonly client: ClientAddress;
}

/**
 * The inbound listener (15006): mTLS with a client certificate required and
 * verified against the mesh trust bundle, the inbound filter chain, then the
 * local app through a keep-alive undici pool; Upgrade requests go through
 * the same chain and are then tunnelled by http-proxy. The port also takes
 * plaintext HTTP, told apart by the first byte, for mtls: PERMISSIVE;
 * authenticate-peer refuses its requests unless the policies in force say
 * PERMISSIVE, so STRICT stays the default without a listener to restart.
 */
export class InboundListener {
  readonly server: Server;
  /** Accepts every connection and hands it to `server` (TLS) or `#plaintext`. */
  readonly #front: NetServer;
  readonly #plaintext: HttpServer;
  readonly #pool: Pool;
  readonly #proxy: httpProxy;
  readonly #peers = new WeakMap<Socket, PeerFacts>();
  /** Open client connections, so a revocation can end those it covers. */
  readonly #open = new Set<TLSSocket>();
  readonly #identities: PeerIdentityCache;
  #ownId: string;

  constructor(options: InboundOptions) {
    const { state, logger, metrics, now } = options;
    const headerRules: RequestHeaderRules = Object.freeze({
      underscores: options.headersWithUnderscores ?? DEFAULT_UNDERSCORE_ACTION,
      replaceTraceContext: options.traced,
    });
    this.#ownId = options.svid.spiffeId;
    this.#identities = new PeerIdentityCache(parseSpiffeId(this.#ownId).trustDomain);
    const origin = `http://${options.appHost}:${options.appPort}`;
    this.#pool = new Pool(origin, {
      pipelining: 1,
      ...upstreamPoolOptions(options.upstream),
    });
    this.#proxy = httpProxy.createProxyServer({ target: origin, ws: true });
    this.#proxy.on('error', (error, _req, socket) =>
      failTunnel(socket as Duplex, error, logger, 'inbound'),
    );
    const chain = inboundChain({
      state,
      logger,
      metrics,
      now,
      peerOf: (socket) => this.#peers.get(socket),
      headerRules,
      buckets: options.buckets,
      global: options.global,
      budgets: options.budgets,
      maxHeaders: options.limits.maxHeaders,
      overload: options.overload,
    });

    this.server = createServer({
      ...tlsOptionsOf(options.svid),
      ...TLS_POLICY,
      requestCert: true,
      rejectUnauthorized: true,
      ...timeoutOptions(options.limits),
    });
    this.#plaintext = createHttpServer(timeoutOptions(options.limits));
    this.#front = createNetServer();
    routeByFirstByte(this.#front, this.server, this.#plaintext, options.limits.handshakeTimeoutMs);
    capConnections(this.#front, options.limits, logger, 'inbound', () =>
      metrics.connectionsRefused.inc('inbound'),
    );
    cutIdleStreams(this.server, options.limits);
    cutIdleStreams(this.#plaintext, options.limits);
    this.#plaintext.on('connection', (socket: Socket) => {
      this.#peers.set(socket, {
        principal: undefined,
        notBeforeMs: 0,
        thumbprint: undefined,
        plaintext: true,
        xfcc: undefined,
        client: clientAddressOf(socket.remoteAddress, 'http'),
      });
    });
    this.server.on('secureConnection', (socket: TLSSocket) => {
      const cert = socket.getPeerCertificate();
      if (!cert?.raw) return;
      // Node verified the chain and dates; a certificate it accepts that no client may use (a CA's,
      // one without clientAuth: certs/peer-identity.ts) is refused here, as a failed handshake.
      const verdict = this.#identities.verdictOf(cert.fingerprint256, cert.raw);
      if (verdict.refused) return refuseHandshake(this.server, socket, verdict.refused);
      const principal = verdict.principal;
      // fingerprint256 is the SHA-256 of the DER certificate, the hash XFCC carries.
      const hash = cert.fingerprint256.replaceAll(':', '').toLowerCase();
      this.#peers.set(socket, {
        principal,
        notBeforeMs: Date.parse(cert.valid_from),
        thumbprint: Buffer.from(hash, 'hex').toString('base64url'),
        plaintext: false,
        xfcc: `By=${this.#ownId};Hash=${hash}${principal ? `;URI=${principal}` : ''}`,
        client: clientAddressOf(socket.remoteAddress, 'https'),
      });
      this.#open.add(socket);
      socket.once('close', () => this.#open.delete(socket));
    });
    reportHandshakeFailures(this.server, 'inbound', logger, metrics);

    // Every connection has its facts from the handshake; the fallback is for a socket gone since.
    const clientOf = (exchange: Exchange): ClientAddress =>
      this.#peers.get(exchange.req.socket)?.client ??
      clientAddressOf(exchange.req.socket.remoteAddress, 'https');
    const identityHeaders = (exchange: Exchange): string[] => {
      const peer = this.#peers.get(exchange.req.socket);
      const headers: string[] = [];
      if (peer?.xfcc) headers.push(CLIENT_CERT_HEADER, peer.xfcc);
      if (exchange.principal) headers.push(IDENTITY_HEADER, exchange.principal);
      const decision = exchange.decision;
      if (exchange.addHeaders) for (const item of exchange.addHeaders) headers.push(item);
      if (exchange.traceHeaders) for (const item of exchange.traceHeaders) headers.push(item);
      // Only an audit-mode denial reaches the app: tell it what enforcement would do.
      if (decision && !decision.allowed) {
        headers.push(
          AUDIT_HEADER,
          `would-deny; policy=${decision.policy ?? '-'}; route=${decision.route ?? '-'}; reason=${decision.reason}`,
        );
      }
      return headers;
    };

    const handlers: ExchangeHandlers = {
      direction: 'inbound',
      chain,
      limits: options.limits,
      metrics,
      logger,
      observers: options.observers,
      forward: async (exchange, res) => {
        const req = exchange.req;
        const target = exchange.target!;
        const headers = upstreamRequestHeaders(
          req.rawHeaders,
          req.headers.connection,
          headerRules,
          clientOf(exchange),
          identityHeaders(exchange),
          exchange.dropHeaders,
        );
        const forwarded = await forwardRequest(
          this.#pool,
          req,
          res,
          target.path + target.search,
          headers,
          {
            responseHeaders: exchange.responseHeaders,
            maxResponseBytes: exchange.responseLimit,
            maxRequestBytes: exchange.requestLimit,
          },
        );
        exchange.responseBytes = forwarded.responseBytes;
        settleResponse(exchange, forwarded.overCap, options);
        return forwarded.status;
      },
      tunnel: (exchange, socket, head) => {
        scrubRequestHeadersInPlace(
          exchange.req.headers,
          headerRules,
          clientOf(exchange),
          identityHeaders(exchange),
          exchange.dropHeaders,
        );
        this.#proxy.ws(exchange.req, socket, head);
      },
    };
    serveExchanges(this.server, handlers);
    serveExchanges(this.#plaintext, handlers);
  }

  listen(port: number, host: string): Promise<number> {
    return listen(this.#front, port, host);
  }

  /** New handshakes use the renewed SVID; open connections keep the one they started with. */
  setCertificate(svid: Svid): void {
    this.#ownId = svid.spiffeId;
    this.server.setSecureContext({ ...tlsOptionsOf(svid), ...TLS_POLICY });
  }

  /**
   * Ends every open connection whose client certificate `revoked` covers
   * (WebSocket tunnels included): authenticate-peer refuses their next
   * request, but a tunnel has no next request.
   */
  closeRevoked(revoked: ReadonlyMap<string, number>): number {
    let closed = 0;
    for (const socket of this.#open) {
      const peer = this.#peers.get(socket);
      if (!peer?.principal) continue;
      if (!isRevokedCertificate(peer.notBeforeMs, revoked.get(peer.principal))) continue;
      socket.destroy();
      closed++;
    }
    return closed;
  }

  /** Stops accepting and lets open requests finish (see drainServer); resolves with the connections cut at the end. */
  drain(graceMs: number): Promise<number> {
    return drainServer(this.#front, [this.server, this.#plaintext], graceMs);
  }

  async close(): Promise<void> {
    // Every connection came through the front server, which ends them all.
    await closeServer(this.#front);
    this.#proxy.close();
    await this.#pool.close();
  }
}
