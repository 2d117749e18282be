import { createServer, type Server } from 'node:https';
import type { Socket } from 'node:net';
import type { Duplex } from 'node:stream';
import type { TLSSocket } from 'node:tls';
import httpProxy from 'http-proxy';
import { Pool } from 'undici';
import { PeerIdentityCache } from '../../certs/peer-identity.ts';
import { closeServer, listen } from '../../common/listen.ts';
import type { Logger } from '../../common/log.ts';
import { inboundChain } from '../filters/chains.ts';
import type { Exchange } from '../filters/filter.ts';
import { forwardRequest } from '../http/forward.ts';
import {
  AUDIT_HEADER,
  CLIENT_CERT_HEADER,
  IDENTITY_HEADER,
  scrubRequestHeadersInPlace,
  upstreamRequestHeaders,
} from '../http/headers.ts';
import { type Svid, tlsOptionsOf } from '../identity/svid.ts';
import type { SnapshotState } from '../policy/snapshot-state.ts';
import type { SidecarMetrics } from '../telemetry/metrics.ts';
import { failTunnel, serveExchanges } from './serve-exchanges.ts';

export interface InboundOptions {
  readonly svid: Svid;
  readonly appHost: string;
  readonly appPort: number;
  readonly state: SnapshotState;
  readonly logger: Logger;
  readonly metrics: SidecarMetrics;
  readonly now: () => number;
}

/** What the handshake proved about a connection, computed once per connection. */
interface PeerFacts {
  readonly principal: string | undefined;
  /** Envoy's x-forwarded-client-cert value: who we are, the peer certificate's hash, who the peer is. */
  readonly xfcc: string;
}

/**
 * The inbound listener (15006): mTLS with a client certificate required and
 * verified against the mesh trust bundle, the inbound filter chain, then the
 * local app through a keep-alive undici pool; Upgrade requests go through
 * the same chain and are then tunnelled by http-proxy.
 */
export class InboundListener {
  readonly server: Server;
  readonly #pool: Pool;
  readonly #proxy: httpProxy;
  readonly #peers = new WeakMap<Socket, PeerFacts>();
  readonly #identities = new PeerIdentityCache();
  #ownId: string;

  constructor(options: InboundOptions) {
    const { state, logger, metrics, now } = options;
    this.#ownId = options.svid.spiffeId;
    const origin = `http://${options.appHost}:${options.appPort}`;
    this.#pool = new Pool(origin, { connections: 128, pipelining: 1 });
    this.#proxy = httpProxy.createProxyServer({ target: origin, ws: true });
    this.#proxy.on('error', (error, _req, socket) =>
      failTunnel(socket as Duplex, error, logger, 'inbound'),
    );
    const chain = inboundChain({
      state,
      logger,
      metrics,
      now,
      identityOf: (socket) => this.#peers.get(socket)?.principal,
    });

    this.server = createServer({
      ...tlsOptionsOf(options.svid),
      minVersion: 'TLSv1.2',
      requestCert: true,
      rejectUnauthorized: true,
    });
    this.server.on('secureConnection', (socket: TLSSocket) => {
      const cert = socket.getPeerCertificate();
      if (!cert?.raw) return;
      const principal = this.#identities.identityOf(cert.fingerprint256, cert.raw);
      // fingerprint256 is the SHA-256 of the DER certificate, the hash XFCC carries.
      const hash = cert.fingerprint256.replaceAll(':', '').toLowerCase();
      this.#peers.set(socket, {
        principal,
        xfcc: `By=${this.#ownId};Hash=${hash}${principal ? `;URI=${principal}` : ''}`,
      });
    });
    this.server.on('tlsClientError', (error, socket) => {
      metrics.handshakeFailures.inc({ listener: 'inbound' });
      logger.info('TLS handshake refused', { remote: socket.remoteAddress, error });
    });

    const identityHeaders = (exchange: Exchange): string[] => {
      const peer = this.#peers.get(exchange.req.socket);
      const headers = ['x-forwarded-proto', 'https'];
      if (peer) headers.push(CLIENT_CERT_HEADER, peer.xfcc);
      if (exchange.principal) headers.push(IDENTITY_HEADER, exchange.principal);
      const decision = exchange.decision;
      // Only an audit-mode denial reaches the app: tell it what enforcement would do.
      if (decision && !decision.allowed) {
        headers.push(
          AUDIT_HEADER,
          `would-deny; policy=${decision.policy ?? '-'}; route=${decision.route ?? '-'}; reason=${decision.reason}`,
        );
      }
      return headers;
    };

    serveExchanges(this.server, {
      direction: 'inbound',
      chain,
      metrics,
      logger,
      forward: async (exchange, res) => {
        const req = exchange.req;
        const target = exchange.target!;
        const headers = upstreamRequestHeaders(
          req.rawHeaders,
          req.headers.connection,
          identityHeaders(exchange),
        );
        return (await forwardRequest(this.#pool, req, res, target.path + target.search, headers))
          .status;
      },
      tunnel: (exchange, socket, head) => {
        const add: Record<string, string> = {};
        const extra = identityHeaders(exchange);
        for (let i = 0; i < extra.length; i += 2) add[extra[i]!] = extra[i + 1]!;
        scrubRequestHeadersInPlace(exchange.req.headers, add);
        this.#proxy.ws(exchange.req, socket, head);
      },
    });
  }

  listen(port: number, host: string): Promise<number> {
    return listen(this.server, port, host);
  }

  /** New handshakes use the renewed SVID; open connections keep the one they started with. */
  setCertificate(svid: Svid): void {
    this.#ownId = svid.spiffeId;
    this.server.setSecureContext({ ...tlsOptionsOf(svid), minVersion: 'TLSv1.2' });
  }

  async close(): Promise<void> {
    await closeServer(this.server);
    this.#proxy.close();
    await this.#pool.close();
  }
}
