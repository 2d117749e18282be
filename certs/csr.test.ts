import { spawnSync } from 'node:child_process';
import { createPublicKey, X509Certificate } from 'node:crypto';
import { writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { createSecureContext } from 'node:tls';
import t from 'tap';
import { tempDir } from '../test/helpers.ts';
import { CertificateAuthority } from './authority.ts';
import { createCsr } from './csr.ts';
import { uriSansOf } from './peer-identity.ts';

const ORDERS = 'spiffe://cluster.local/ns/shop/sa/orders';
const hasOpenssl = spawnSync('openssl', ['version']).status === 0;

t.test(
  "the CA signs the sidecar's CSR for its SPIFFE ID, over the key the sidecar keeps",
  async (t) => {
    const ca = await CertificateAuthority.create('cluster.local');
    const { keyPem, csrPem } = await createCsr(ORDERS);
    const leafPem = await ca.signCsr(csrPem, ORDERS, { ttlMs: 3600_000 });
    const leaf = new X509Certificate(leafPem);
    t.ok(leaf.verify(new X509Certificate(ca.certPem).publicKey), 'signed by the CA');
    t.same(uriSansOf(leaf.raw), [ORDERS]);
    t.ok(leaf.publicKey.equals(createPublicKey(keyPem)), 'for the key from the CSR');
    // TLS takes the pair as the sidecar will use it (it refuses a key that does not match).
    t.ok(createSecureContext({ cert: leafPem, key: keyPem }));
  },
);

t.test('the CA refuses the CSR for any identity other than the one it asks for', async (t) => {
  const ca = await CertificateAuthority.create('cluster.local');
  const { csrPem } = await createCsr(ORDERS);
  await t.rejects(
    ca.signCsr(csrPem, 'spiffe://cluster.local/ns/shop/sa/payments', { ttlMs: 1000 }),
    {
      code: 'POSTERN_CSR_REJECTED',
      message: /asks for spiffe:\/\/cluster\.local\/ns\/shop\/sa\/orders/,
    },
  );
});

t.test(
  "openssl verifies the CSR's self-signature and reads its one URI SAN",
  { skip: hasOpenssl ? false : 'openssl is not installed' },
  async (t) => {
    const file = join(await tempDir(t), 'orders.csr');
    const { csrPem } = await createCsr(ORDERS);
    await writeFile(file, csrPem);
    const openssl = spawnSync('openssl', ['req', '-in', file, '-noout', '-verify', '-text'], {
      encoding: 'utf8',
    });
    t.equal(openssl.status, 0, openssl.stderr);
    t.match(openssl.stdout + openssl.stderr, /self-signature verify OK/);
    t.match(openssl.stdout, /Public Key Algorithm: id-ecPublicKey[\s\S]*NIST CURVE: P-256/);
    t.match(openssl.stdout, /Signature Algorithm: ecdsa-with-SHA256/);
    t.match(openssl.stdout, new RegExp(`X509v3 Subject Alternative Name: *\\n *URI:${ORDERS}\\n`));
  },
);

t.test('the PEM has the 64-character lines RFC 7468 asks of writers', async (t) => {
  const { csrPem } = await createCsr(ORDERS);
  const lines = csrPem.trimEnd().split('\n');
  t.equal(lines[0], '-----BEGIN CERTIFICATE REQUEST-----');
  t.equal(lines.at(-1), '-----END CERTIFICATE REQUEST-----');
  const body = lines.slice(1, -1);
  t.ok(body.slice(0, -1).every((line) => line.length === 64));
  t.ok(body.at(-1)!.length > 0 && body.at(-1)!.length <= 64);
});

t.test('a CSR is made only for a valid SPIFFE ID (a URI SAN holds ASCII only)', async (t) => {
  await t.rejects(createCsr('spiffe://cluster.local/ns/shöp/sa/orders'), {
    code: 'POSTERN_INVALID_SPIFFE_ID',
  });
});
