import { X509Certificate } from 'node:crypto';
import type { PeerCertificate } from 'node:tls';
import t from 'tap';
import { CertificateAuthority } from '../../certs/authority.ts';
import { generateKeyPair } from '../../certs/x509.ts';
import { expectSpiffeId } from './peer-verification.ts';

const ORDERS = 'spiffe://cluster.local/ns/shop/sa/orders';

/** The parts of a TLS peer certificate the check reads, from a certificate the CA issued at `now`. */
async function peer(
  ca: CertificateAuthority,
  spiffeId: string,
  now: Date,
): Promise<PeerCertificate> {
  const keys = await generateKeyPair();
  const pem = await ca.issue(keys.publicKey, { uris: [spiffeId], ttlMs: 3600_000, now });
  const x = new X509Certificate(pem);
  return { raw: x.raw, valid_from: x.validFrom } as PeerCertificate;
}

t.test(
  'an outbound destination presenting a revoked certificate of the expected identity is refused',
  async (t) => {
    const ca = await CertificateAuthority.create('cluster.local');
    const revokedAt = Date.parse('2026-11-25T10:00:00Z');
    const check = expectSpiffeId(ORDERS, (id) => (id === ORDERS ? revokedAt - 60_000 : undefined));
    const before = await peer(ca, ORDERS, new Date(revokedAt - 10_000));
    const after = await peer(ca, ORDERS, new Date(revokedAt + 10_000));
    t.match(check('orders', before), { code: 'POSTERN_PEER_REVOKED' });
    t.equal(check('orders', after), undefined, 'one issued after the revocation is accepted');
    const other = await peer(ca, 'spiffe://cluster.local/ns/shop/sa/payments', new Date());
    t.match(check('orders', other), { code: 'POSTERN_PEER_IDENTITY_MISMATCH' });
  },
);

t.test(
  'an outbound destination presenting a certificate unfit for a TLS server, or no SVID, is refused',
  async (t) => {
    const ca = await CertificateAuthority.create('cluster.local');
    const check = expectSpiffeId(ORDERS);
    const root = new X509Certificate(ca.certPem);
    const asRoot = { raw: root.raw, valid_from: root.validFrom } as PeerCertificate;
    t.match(
      check('orders', asRoot),
      { code: 'POSTERN_PEER_NOT_LEAF' },
      'the CA certificate itself',
    );
    const keys = await generateKeyPair();
    const twoUris = new X509Certificate(
      await ca.issue(keys.publicKey, { uris: [ORDERS, 'https://orders.example'], ttlMs: 60_000 }),
    );
    t.match(
      check('orders', { raw: twoUris.raw, valid_from: twoUris.validFrom } as PeerCertificate),
      { code: 'POSTERN_PEER_IDENTITY_MISMATCH', presented: undefined },
      'a second URI SAN beside the expected ID',
    );
    t.match(check('orders', {} as PeerCertificate), { code: 'POSTERN_PEER_IDENTITY_MISMATCH' });
  },
);
