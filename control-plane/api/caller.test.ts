import { X509Certificate } from 'node:crypto';
import type { IncomingMessage } from 'node:http';
import t from 'tap';
import { CertificateAuthority } from '../../certs/authority.ts';
import { generateKeyPair } from '../../certs/x509.ts';
import { svidDnsNames } from './caller.ts';

const SHARED = 'spiffe://cluster.local/ns/shop/sa/default';

/** A request whose TLS peer presented a certificate for SHARED with `dnsNames`. */
async function presenting(ca: CertificateAuthority, dnsNames: string[]): Promise<IncomingMessage> {
  const keys = await generateKeyPair();
  const certificate = new X509Certificate(
    await ca.issue(keys.publicKey, { uris: [SHARED], dnsNames, ttlMs: 3600_000 }),
  );
  return { socket: { getPeerX509Certificate: () => certificate } } as unknown as IncomingMessage;
}

t.test(
  'DNS names are remembered per certificate, not per identity: two workloads on one service account stay apart',
  async (t) => {
    const ca = await CertificateAuthority.create('cluster.local');
    const payments = await presenting(ca, ['payments.shop.svc.cluster.local']);
    const frontend = await presenting(ca, ['frontend.shop.svc.cluster.local']);
    for (let presented = 1; presented <= 3; presented++) {
      t.same(svidDnsNames(payments), ['payments.shop.svc.cluster.local']);
      t.same(svidDnsNames(frontend), ['frontend.shop.svc.cluster.local']);
    }
    svidDnsNames(payments).push('admin.shop.svc.cluster.local');
    t.same(
      svidDnsNames(payments),
      ['payments.shop.svc.cluster.local'],
      'a caller cannot change what is remembered',
    );
  },
);
