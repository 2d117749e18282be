import t from 'tap';
import { CertificateAuthority } from '../../certs/authority.ts';
import { generateKeyPair } from '../../certs/x509.ts';
import { readTrustBundle, snapshotTrustBundle } from './trust-bundle.ts';

t.test('a bundle of two roots reads as both, by subject and fingerprint', async (t) => {
  const old = await CertificateAuthority.create('cluster.local');
  const next = await CertificateAuthority.create('cluster.local');
  const reading = readTrustBundle(old.withBundle(next.certPem).bundlePem);
  if (!reading.ok) throw new Error(reading.reason);
  t.same(
    reading.roots.map((root) => root.subject),
    [old, next].map((ca) => ca.certificate.subject),
  );
  t.match(reading.roots[0]!.fingerprint, /^([0-9A-F]{2}:){31}[0-9A-F]{2}$/);
});

t.test('what no TLS stack could trust is not a bundle, and says why', async (t) => {
  const ca = await CertificateAuthority.create('cluster.local');
  const keys = await generateKeyPair();
  const leaf = await ca.issue(keys.publicKey, {
    uris: ['spiffe://cluster.local/ns/shop/sa/orders'],
    ttlMs: 60_000,
  });
  t.match(readTrustBundle(''), { ok: false, reason: /no PEM certificate/ });
  t.match(readTrustBundle(ca.certPem + leaf), {
    ok: false,
    reason: /certificate 2 is not a CA certificate/,
  });
  t.match(readTrustBundle('-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n'), {
    ok: false,
    reason: /certificate 1 does not parse/,
  });
});

t.test(
  'a snapshot without a trust bundle keeps the current one; a bundle that is not text is refused',
  async (t) => {
    const ca = await CertificateAuthority.create('cluster.local');
    t.same(snapshotTrustBundle({ version: '1.1' }), { ok: true, pem: undefined });
    t.same(snapshotTrustBundle(null), { ok: true, pem: undefined });
    t.same(snapshotTrustBundle({ trustBundle: ca.bundlePem }), { ok: true, pem: ca.bundlePem });
    t.match(snapshotTrustBundle({ trustBundle: 42 }), { ok: false, reason: /PEM text/ });
  },
);
