import type { TLSSocket } from 'node:tls';
import { x509 } from '../../certs/x509.ts';
import { AuthenticationError } from '../../common/errors.ts';
import { BadRequestBodyError, readJsonBody, sendJson } from '../../common/http-json.ts';
import type { CertificateRequest, CertificateResponse } from '../../common/wire.ts';
import { refuseRevoked, svidDnsNames, svidIdentity, workloadDnsNames } from './caller.ts';
import type { ApiContext, Handler, Routes } from './context.ts';

/** POST /v1/certificates (CSR signing) and GET /v1/trust-bundle. */
export function certificateRoutes(ctx: ApiContext): Routes {
  const { ca, credentials, logger } = ctx;

  // The first request proves identity with a bootstrap credential (a token
  // an operator minted; in a cluster, the pod's projected ServiceAccount
  // token); renewals with the SVID being renewed. Either way the identity
  // comes from the credential, never from what the CSR asks.
  const issue: Handler = async (req, res) => {
    const body = (await readJsonBody(req)) as Partial<CertificateRequest>;
    if (typeof body?.csr !== 'string')
      throw new BadRequestBodyError(400, 'expected {"csr": "<PEM>", "token"?: "..."}');
    let spiffeId: string;
    let dnsNames: string[];
    let via: string;
    const current = svidIdentity(req);
    if (typeof body.token === 'string') {
      const binding = await credentials.bootstrap(body.token, req.socket.remoteAddress ?? '');
      if (!binding)
        throw new AuthenticationError('the bootstrap credential proves no workload identity');
      spiffeId = binding.spiffeId;
      dnsNames = workloadDnsNames(binding.workload, binding.namespace);
      via = binding.via;
    } else if (current) {
      if (!(await credentials.mayRenew(current, req.socket.remoteAddress ?? ''))) {
        throw new AuthenticationError(
          `${current} has no bootstrap binding any more (revoked) nor, in a cluster, a live pod at ${req.socket.remoteAddress}; it cannot renew`,
        );
      }
      refuseRevoked(req, current, ctx.revokedUpTo);
      spiffeId = current;
      // A renewal keeps the names the bootstrap proved: they are in the certificate being renewed.
      dnsNames = svidDnsNames(req);
      via = 'svid';
    } else {
      throw new AuthenticationError(
        'send a bootstrap token, or renew over a connection that presents your current SVID',
      );
    }
    // An identity revoked a moment ago and bound again: its new certificate
    // starts after the revocation's cut-off, or peers would refuse it as
    // revoked until its renewal.
    const upTo = ctx.revokedUpTo(spiffeId);
    const chain = await ca.signCsr(body.csr, spiffeId, {
      ttlMs: ctx.svidTtlMs,
      dnsNames,
      ...(upTo === undefined ? {} : { notBeforeAfter: new Date(upTo + 1000) }),
    });
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
      via,
      remote: (req.socket as TLSSocket).remoteAddress,
    });
    sendJson(res, 200, response);
  };

  const trustBundle: Handler = async (_req, res) => {
    res.writeHead(200, { 'content-type': 'application/x-pem-file' });
    res.end(ca.bundlePem);
  };

  return { 'POST /v1/certificates': issue, 'GET /v1/trust-bundle': trustBundle };
}
