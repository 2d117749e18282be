import type { IncomingMessage, ServerResponse } from 'node:http';
import { createServer, type Server } from 'node:https';
import type { TLSSocket } from 'node:tls';
import type { CertificateAuthority } from '../certs/authority.ts';
import { spiffeIdOf } from '../certs/peer-identity.ts';
import { x509 } from '../certs/x509.ts';
import { isHostPort } from '../common/address.ts';
import { AuthenticationError, CsrRejectedError } from '../common/errors.ts';
import { BadRequestBodyError, readJsonBody, sendError, sendJson } from '../common/http-json.ts';
import type { Logger } from '../common/log.ts';
import { parseSpiffeId } from '../common/spiffe.ts';
import { formatSseEvent } from '../common/sse.ts';
import {
  type CertificateRequest,
  type CertificateResponse,
  parseLabels,
  type SnapshotAck,
} from '../common/wire.ts';
import type { SnapshotHub } from './snapshot-hub.ts';
import type { TokenStore } from './tokens.ts';

export interface ApiOptions {
  readonly ca: CertificateAuthority;
  readonly tokens: TokenStore;
  readonly hub: SnapshotHub;
  readonly logger: Logger;
  readonly svidTtlMs: number;
  /** Serving certificate and key for 15010 (issued from `ca`). */
  readonly tls: { cert: string; key: string };
  /** How often an idle snapshot stream carries a comment, so proxies and sidecars see it alive. */
  readonly keepAliveMs?: number;
}

const MAX_UNREAD_BYTES = 8 * 1024 * 1024;

type Handler = (req: IncomingMessage, res: ServerResponse, url: URL) => Promise<void>;

/** The SPIFFE ID proven by the caller's client certificate, if it presented a valid one. */
function svidIdentity(req: IncomingMessage): string | undefined {
  const socket = req.socket as TLSSocket;
  if (!socket.authorized) return undefined;
  const peer = socket.getPeerX509Certificate();
  return peer ? spiffeIdOf(peer.raw) : undefined;
}

/** DNS names for a workload's SVID, so tools that check hostnames (curl) can address it by service name. */
function workloadDnsNames(workload: string, namespace: string): string[] {
  return [
    `${workload}.${namespace}.svc.cluster.local`,
    `${workload}.${namespace}.svc`,
    `${workload}.${namespace}`,
  ];
}

/** The control plane's HTTPS API (port 15010). Routes and their authentication are listed in `routes`. */
export function createApiServer(options: ApiOptions): Server {
  const { ca, tokens, hub, logger } = options;
  const keepAliveMs = options.keepAliveMs ?? 15_000;

  // POST /v1/certificates: the first request proves identity with a bootstrap
  // token; renewals with the SVID being renewed. Either way the identity comes
  // from the credential, and the CSR must ask for exactly that identity.
  const issueCertificate: Handler = async (req, res) => {
    const body = (await readJsonBody(req)) as Partial<CertificateRequest>;
    if (typeof body?.csr !== 'string')
      throw new BadRequestBodyError(400, 'expected {"csr": "<PEM>", "token"?: "..."}');
    let spiffeId: string;
    let dnsNames: string[];
    const current = svidIdentity(req);
    if (typeof body.token === 'string') {
      const binding = await tokens.verify(body.token);
      if (!binding) throw new AuthenticationError('the bootstrap token is not known');
      spiffeId = binding.spiffeId;
      dnsNames = workloadDnsNames(binding.workload, binding.namespace);
    } else if (current) {
      if (!(await tokens.isBound(current))) {
        throw new AuthenticationError(
          `${current} has no bootstrap binding any more (revoked); it cannot renew`,
        );
      }
      spiffeId = current;
      // A renewal keeps the names the bootstrap proved: they are in the certificate being renewed.
      const peer = new x509.X509Certificate(
        (req.socket as TLSSocket).getPeerX509Certificate()!.raw,
      );
      const san = peer.getExtension(x509.SubjectAlternativeNameExtension);
      dnsNames = san?.names.items.filter((n) => n.type === 'dns').map((n) => n.value) ?? [];
    } else {
      throw new AuthenticationError(
        'send a bootstrap token, or renew over a connection that presents your current SVID',
      );
    }
    const chain = await ca.signCsr(body.csr, spiffeId, { ttlMs: options.svidTtlMs, dnsNames });
    const notAfter = new x509.X509Certificate(chain).notAfter.toISOString();
    const response: CertificateResponse = {
      certificateChain: chain,
      trustBundle: ca.bundlePem,
      spiffeId,
      notAfter,
    };
    logger.info('certificate issued', {
      spiffeId,
      notAfter,
      via: body.token ? 'bootstrap-token' : 'svid',
    });
    sendJson(res, 200, response);
  };

  const trustBundle: Handler = async (_req, res) => {
    res.writeHead(200, { 'content-type': 'application/x-pem-file' });
    res.end(ca.bundlePem);
  };

  // GET /v1/snapshots: an SSE stream of this workload's snapshots. Opening it
  // registers the workload (service name, labels, inbound address) under the
  // identity of its SVID; closing it removes the registration.
  const watchSnapshots: Handler = async (req, res, url) => {
    const spiffeId = svidIdentity(req);
    if (!spiffeId)
      throw new AuthenticationError('the snapshot watch needs a client certificate (your SVID)');
    const workload = url.searchParams.get('workload') ?? '';
    const binding = await tokens.bindingFor(workload, spiffeId);
    // The caller may have gone while we looked: registering it now would
    // leave a registry entry that nothing ever removes.
    if (res.destroyed) return;
    if (!binding) {
      sendError(
        res,
        403,
        'POSTERN_FORBIDDEN',
        `${spiffeId} is not bound to workload ${JSON.stringify(workload)}`,
      );
      return;
    }
    let labels: Record<string, string>;
    try {
      labels = parseLabels(url.searchParams.get('labels') ?? '');
    } catch (error) {
      throw new BadRequestBodyError(400, (error as Error).message);
    }
    const address = url.searchParams.get('address') || undefined;
    if (address !== undefined && !isHostPort(address)) {
      throw new BadRequestBodyError(400, `address ${JSON.stringify(address)} is not host:port`);
    }
    res.writeHead(200, { 'content-type': 'text/event-stream', 'cache-control': 'no-store' });
    res.flushHeaders();
    const unsubscribe = hub.subscribe({
      workload,
      namespace: parseSpiffeId(spiffeId).namespace,
      labels,
      address,
      spiffeId,
      send: (snapshot) => {
        // A sidecar that stopped reading would make us buffer every snapshot
        // for it; past a bound it is cut off, and gets the latest whole when
        // it reconnects.
        if (res.writableLength > MAX_UNREAD_BYTES) {
          logger.warn('snapshot watch cut off: the sidecar is not reading', { workload, spiffeId });
          res.destroy();
          return;
        }
        res.write(formatSseEvent('snapshot', JSON.stringify(snapshot)));
      },
    });
    const keepAlive = setInterval(() => res.write(': keep-alive\n\n'), keepAliveMs);
    logger.info('workload subscribed', { workload, spiffeId, address });
    res.on('close', () => {
      clearInterval(keepAlive);
      unsubscribe();
      logger.info('workload unsubscribed', { workload, spiffeId, address });
    });
  };

  const recordAck: Handler = async (req, res) => {
    const spiffeId = svidIdentity(req);
    if (!spiffeId) throw new AuthenticationError('acks need a client certificate (your SVID)');
    const ack = (await readJsonBody(req)) as SnapshotAck;
    if (
      typeof ack?.version !== 'string' ||
      (ack.status !== 'applied' && ack.status !== 'rejected')
    ) {
      throw new BadRequestBodyError(
        400,
        'expected {"workload", "version", "hash", "status": "applied"|"rejected", "reason"?}',
      );
    }
    if (!(await tokens.bindingFor(String(ack.workload), spiffeId))) {
      sendError(
        res,
        403,
        'POSTERN_FORBIDDEN',
        `${spiffeId} is not bound to workload ${JSON.stringify(ack.workload)}`,
      );
      return;
    }
    hub.recordAck(ack, spiffeId);
    if (ack.status === 'rejected')
      logger.warn('snapshot rejected by sidecar', { spiffeId, ...ack });
    res.writeHead(204).end();
  };

  // GET /v1/acks: what each sidecar last applied or rejected (istioctl's
  // proxy-status): operators and scripts see whether a change has landed.
  const listAcks: Handler = async (req, res) => {
    if (!svidIdentity(req))
      throw new AuthenticationError('the ack status needs a client certificate from the mesh CA');
    sendJson(res, 200, { version: hub.version, acks: hub.acks });
  };

  const notBuilt =
    (what: string): Handler =>
    async (_req, res) => {
      sendError(res, 501, 'POSTERN_NOT_IMPLEMENTED', `${what} is not implemented yet`);
    };

  const routes: Record<string, Handler> = {
    'POST /v1/certificates': issueCertificate,
    'GET /v1/trust-bundle': trustBundle,
    'GET /v1/snapshots': watchSnapshots,
    'POST /v1/acks': recordAck,
    'GET /v1/acks': listAcks,
    'POST /v1/usage': notBuilt('usage reporting'),
    'GET /v1/alerts': notBuilt('exfiltration alerts'),
  };

  const server = createServer(
    {
      ...options.tls,
      ca: ca.bundlePem,
      minVersion: 'TLSv1.2',
      // A sidecar's first request has no SVID yet (it brings a bootstrap
      // token), so the handshake asks for a certificate without requiring one;
      // each route checks `authorized` itself.
      requestCert: true,
      rejectUnauthorized: false,
    },
    (req, res) => {
      // Only the path and query matter; anything URL cannot parse is a bad request, not a crash.
      let url: URL;
      try {
        url = new URL(`https://control-plane${(req.url ?? '/').startsWith('/') ? req.url : '/'}`);
      } catch {
        sendError(res, 400, 'POSTERN_BAD_REQUEST', 'the request target is not a valid path');
        return;
      }
      const handler = routes[`${req.method} ${url.pathname}`];
      if (!handler) {
        sendError(res, 404, 'POSTERN_NOT_FOUND', `no route ${req.method} ${url.pathname}`);
        return;
      }
      handler(req, res, url).catch((error: unknown) => {
        const status =
          error instanceof BadRequestBodyError
            ? error.status
            : error instanceof AuthenticationError
              ? 401
              : error instanceof CsrRejectedError
                ? 403
                : 500;
        const code = (error as { code?: string }).code ?? 'POSTERN_INTERNAL';
        if (status === 500) logger.error('request failed', { path: url.pathname, error });
        else
          logger.warn('request refused', {
            path: url.pathname,
            status,
            code,
            reason: (error as Error).message,
          });
        if (!res.headersSent)
          sendError(
            res,
            status,
            code,
            status === 500 ? 'internal error' : (error as Error).message,
          );
        else res.destroy();
      });
    },
  );
  return server;
}
