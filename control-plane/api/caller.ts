import type { IncomingMessage } from 'node:http';
import { isIP } from 'node:net';
import type { TLSSocket } from 'node:tls';
import { certificateProblemOf, spiffeIdOf } from '../../certs/peer-identity.ts';
import { x509 } from '../../certs/x509.ts';
import { isLoopbackAddress, plainAddress } from '../../common/address.ts';
import { AuthenticationError, ForbiddenError } from '../../common/errors.ts';
import { type PrincipalMatcher, principalMatches } from '../../common/policy/principals.ts';
import { isRevokedCertificate } from '../../common/revocation.ts';
import { parseSpiffeId } from '../../common/spiffe.ts';

/** The DNS suffix workload SVIDs carry after `<workload>.<namespace>` (see `workloadDnsNames`). */
const SERVICE_DOMAIN = 'svc.cluster.local';

/** DNS names for a workload's SVID, so tools that check hostnames (curl) can address it by service name. */
export function workloadDnsNames(workload: string, namespace: string): string[] {
  return [
    `${workload}.${namespace}.${SERVICE_DOMAIN}`,
    `${workload}.${namespace}.svc`,
    `${workload}.${namespace}`,
  ];
}

/**
 * The SPIFFE ID proven by the caller's client certificate, if it presented a
 * valid one: verified by TLS, and fit for a client (not a CA's, clientAuth:
 * what OpenSSL lets through, see certs/peer-identity.ts).
 */
export function svidIdentity(req: IncomingMessage): string | undefined {
  const socket = req.socket as TLSSocket;
  if (!socket.authorized) return undefined;
  const peer = socket.getPeerX509Certificate();
  if (!peer || certificateProblemOf(peer.raw, 'client')) return undefined;
  return spiffeIdOf(peer.raw);
}

/**
 * The caller's identity, which must be one of the control plane's
 * `--operators`: operator views and commands (`what`) are for them only.
 */
export function operatorIdentity(
  req: IncomingMessage,
  operators: PrincipalMatcher,
  what: string,
): string {
  const id = svidIdentity(req);
  if (!id) throw new AuthenticationError(`${what} needs an operator client certificate`);
  if (!principalMatches(operators, id)) {
    throw new ForbiddenError(
      `${id} is not an operator; ${what} is for the identities the control plane's --operators names`,
    );
  }
  return id;
}

/**
 * DNS SANs by certificate (SHA-256 fingerprint, which Node computes
 * natively). Reading them parses the certificate in JavaScript, a few
 * milliseconds each, and every watch and every ack presents a certificate:
 * per request, that was half of the control plane's CPU in the scale run
 * (load-tests/reports/control-plane-scale.md). A certificate's names never
 * change, so each is read once; past the bound the oldest is forgotten.
 */
const dnsNamesByCertificate = new Map<string, readonly string[]>();
const REMEMBERED_CERTIFICATES = 100_000;

/** The DNS SANs of the caller's verified client certificate. */
export function svidDnsNames(req: IncomingMessage): string[] {
  const peer = (req.socket as TLSSocket).getPeerX509Certificate();
  if (!peer) return [];
  const fingerprint = peer.fingerprint256;
  let names = dnsNamesByCertificate.get(fingerprint);
  if (!names) {
    const san = new x509.X509Certificate(peer.raw).getExtension(
      x509.SubjectAlternativeNameExtension,
    );
    names = san?.names.items.filter((n) => n.type === 'dns').map((n) => n.value) ?? [];
    if (dnsNamesByCertificate.size >= REMEMBERED_CERTIFICATES)
      dnsNamesByCertificate.delete(dnsNamesByCertificate.keys().next().value!);
    dnsNamesByCertificate.set(fingerprint, names);
  }
  return [...names];
}

/** notBefore (epoch ms) of the caller's client certificate; 0 when it presented none. */
export function svidNotBefore(req: IncomingMessage): number {
  const peer = (req.socket as TLSSocket).getPeerX509Certificate();
  return peer ? Date.parse(peer.validFrom) : 0;
}

/**
 * Refuses a caller whose certificate was revoked (`token revoke`), even when
 * its identity has been bound again since: a stolen SVID must not renew
 * itself or register once the operator re-binds the identity.
 */
export function refuseRevoked(
  req: IncomingMessage,
  spiffeId: string,
  revokedUpTo: (spiffeId: string) => number | undefined,
): void {
  if (isRevokedCertificate(svidNotBefore(req), revokedUpTo(spiffeId))) {
    throw new AuthenticationError(
      `this certificate of ${spiffeId} was issued before the identity was revoked`,
    );
  }
}

/** A caller whose SVID was issued for one workload. */
export interface WorkloadCaller {
  readonly spiffeId: string;
  readonly namespace: string;
  readonly workload: string;
}

/**
 * The workload the caller's SVID was issued for. The bootstrap token proved
 * it, and the CA wrote it into the SVID as `<workload>.<namespace>.svc...`
 * (renewals keep it), so the certificate, not the request, says which service
 * a caller is: two workloads sharing a service account cannot pass for each
 * other. A certificate that names no workload (an operator's, `certs issue`)
 * cannot act as one.
 */
export function workloadCaller(req: IncomingMessage, what: string): WorkloadCaller {
  const spiffeId = svidIdentity(req);
  if (!spiffeId) throw new AuthenticationError(`${what} needs a client certificate (your SVID)`);
  const namespace = parseSpiffeId(spiffeId).namespace;
  const suffix = `.${namespace}.${SERVICE_DOMAIN}`;
  const workloads = svidDnsNames(req)
    .filter((name) => name.endsWith(suffix))
    .map((name) => name.slice(0, -suffix.length))
    .filter((name) => name && !name.includes('.'));
  if (workloads.length !== 1) {
    throw new ForbiddenError(
      `the certificate of ${spiffeId} was not issued for one workload (no <workload>.${namespace}.${SERVICE_DOMAIN} DNS name); ${what} is for sidecars`,
    );
  }
  return { spiffeId, namespace, workload: workloads[0]! };
}

/**
 * Whether a sidecar connecting from `remote` may advertise `host` as its
 * inbound address: the same IP (a pod registers its own IP), or both on
 * loopback (a local mesh). A DNS name is refused: it would let a caller
 * point peers anywhere the name resolves.
 */
export function mayAdvertise(host: string, remote: string | undefined): boolean {
  if (!remote) return false;
  const advertised = plainAddress(host);
  const from = plainAddress(remote);
  if (isIP(advertised) === 0) return false;
  return advertised === from || (isLoopbackAddress(advertised) && isLoopbackAddress(from));
}
