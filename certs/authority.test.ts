import { execFileSync } from 'node:child_process';
import { X509Certificate } from 'node:crypto';
import { mkdtemp, readFile, rm, stat, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import t from 'tap';
import { CertificateAuthority } from './authority.ts';
import { createCsr } from './csr.ts';
import { spiffeIdOf, uriSansOf } from './peer-identity.ts';
import { generateKeyPair, x509 } from './x509.ts';

const ORDERS = 'spiffe://cluster.local/ns/shop/sa/orders';

t.test(
  'a CA written to a folder loads back, with its key readable only by its owner',
  async (t) => {
    const dir = await mkdtemp(join(tmpdir(), 'postern-ca-'));
    const ca = await CertificateAuthority.create('example.org');
    await ca.writeTo(dir);
    t.equal((await stat(join(dir, 'ca.key'))).mode & 0o777, 0o600);
    const loaded = await CertificateAuthority.load(dir);
    t.equal(loaded.trustDomain, 'example.org');
    t.equal(loaded.certPem, ca.certPem);
    // The loaded key signs certificates that the original certificate verifies.
    const keys = await generateKeyPair();
    const leaf = new X509Certificate(
      await loaded.issue(keys.publicKey, { uris: [ORDERS], ttlMs: 60_000 }),
    );
    t.ok(leaf.verify(new X509Certificate(ca.certPem).publicKey));
  },
);

t.test(
  'a signed CSR yields a leaf that openssl verifies against the bundle, with the SPIFFE ID as its only URI SAN',
  async (t) => {
    const dir = await mkdtemp(join(tmpdir(), 'postern-ca-'));
    const ca = await CertificateAuthority.create('cluster.local');
    const { csrPem } = await createCsr(ORDERS);
    const pem = await ca.signCsr(csrPem, ORDERS, {
      ttlMs: 3600_000,
      dnsNames: ['orders.shop.svc'],
    });
    await writeFile(join(dir, 'bundle.pem'), ca.bundlePem);
    await writeFile(join(dir, 'leaf.pem'), pem);
    t.match(
      execFileSync(
        'openssl',
        ['verify', '-CAfile', join(dir, 'bundle.pem'), join(dir, 'leaf.pem')],
        { encoding: 'utf8' },
      ),
      /leaf\.pem: OK/,
    );
    const text = execFileSync(
      'openssl',
      ['x509', '-in', join(dir, 'leaf.pem'), '-noout', '-text'],
      { encoding: 'utf8' },
    );
    t.match(text, /TLS Web Server Authentication, TLS Web Client Authentication/);
    t.match(text, /CA:FALSE/);
    const der = new X509Certificate(pem).raw;
    t.same(uriSansOf(der), [ORDERS]);
    t.equal(spiffeIdOf(der), ORDERS);
  },
);

t.test('a CSR whose signature does not verify is refused', async (t) => {
  const ca = await CertificateAuthority.create('cluster.local');
  const { csrPem } = await createCsr(ORDERS);
  // Flip a byte inside the signature (the last bytes of the DER).
  const der = Buffer.from(csrPem.replace(/-----[A-Z ]+-----/g, '').replace(/\s/g, ''), 'base64');
  der[der.length - 3] = der[der.length - 3]! ^ 0xff;
  const tampered = `-----BEGIN CERTIFICATE REQUEST-----\n${der.toString('base64')}\n-----END CERTIFICATE REQUEST-----\n`;
  await t.rejects(ca.signCsr(tampered, ORDERS, { ttlMs: 1000 }), { code: 'POSTERN_CSR_REJECTED' });
});

t.test('a CSR asking for two identities is refused even if one is right', async (t) => {
  const ca = await CertificateAuthority.create('cluster.local');
  const keys = await generateKeyPair();
  const csr = await x509.Pkcs10CertificateRequestGenerator.create({
    keys,
    signingAlgorithm: { name: 'ECDSA', hash: 'SHA-256' },
    extensions: [
      new x509.SubjectAlternativeNameExtension([
        { type: 'url', value: ORDERS },
        { type: 'url', value: 'spiffe://cluster.local/ns/kube-system/sa/admin' },
      ]),
    ],
  });
  await t.rejects(ca.signCsr(csr.toString('pem'), ORDERS, { ttlMs: 1000 }), {
    code: 'POSTERN_CSR_REJECTED',
    message: /asks for .*, spiffe:\/\/cluster\.local\/ns\/kube-system\/sa\/admin/,
  });
});

t.test('half a CA folder is an error, not a reason to mint a new root', async (t) => {
  const dir = await mkdtemp(join(tmpdir(), 'postern-ca-'));
  const ca = await CertificateAuthority.create('cluster.local');
  await ca.writeTo(dir);
  await rm(join(dir, 'ca.key'));
  await t.rejects(CertificateAuthority.loadOrCreate(dir, 'cluster.local'), {
    code: 'POSTERN_CA_INCOMPLETE',
    message: /has ca\.crt but not ca\.key/,
  });
  t.equal(
    await readFile(join(dir, 'ca.crt'), 'utf8'),
    ca.certPem,
    'the existing certificate was left alone',
  );
});

t.test('an empty CA folder gets a new CA, which later starts load', async (t) => {
  const dir = await mkdtemp(join(tmpdir(), 'postern-ca-'));
  const created = await CertificateAuthority.loadOrCreate(dir, 'example.org');
  const loaded = await CertificateAuthority.loadOrCreate(dir, 'ignored.example');
  t.equal(loaded.certPem, created.certPem);
  t.equal(loaded.trustDomain, 'example.org');
});

t.test(
  'two roots of one trust domain, trusted side by side as in a root rotation: distinct names, and openssl verifies a leaf of either against the shared bundle',
  async (t) => {
    const dir = await mkdtemp(join(tmpdir(), 'postern-ca-'));
    const old = await CertificateAuthority.create('cluster.local');
    const next = await CertificateAuthority.create('cluster.local');
    t.not(old.certificate.subject, next.certificate.subject);
    const during = next.withBundle(old.certPem + next.certPem + old.certPem);
    t.equal(during.bundlePem, next.certPem + old.certPem, 'its own root first, each root once');
    await writeFile(join(dir, 'bundle.pem'), during.bundlePem);
    for (const [name, ca] of [
      ['old', old],
      ['new', during],
    ] as const) {
      const keys = await generateKeyPair();
      await writeFile(
        join(dir, `${name}.pem`),
        await ca.issue(keys.publicKey, { uris: [ORDERS], ttlMs: 60_000 }),
      );
      t.match(
        execFileSync(
          'openssl',
          ['verify', '-CAfile', join(dir, 'bundle.pem'), join(dir, `${name}.pem`)],
          {
            encoding: 'utf8',
          },
        ),
        new RegExp(`${name}\\.pem: OK`),
      );
    }
  },
);

t.test('a CA folder loads with the bundle beside it, its own root always in it', async (t) => {
  const dir = await mkdtemp(join(tmpdir(), 'postern-ca-'));
  const other = await CertificateAuthority.create('cluster.local');
  const ca = (await CertificateAuthority.create('cluster.local')).withBundle(other.certPem);
  await ca.writeTo(dir);
  t.equal((await CertificateAuthority.load(dir)).bundlePem, ca.certPem + other.certPem);
  await writeFile(join(dir, 'bundle.pem'), other.certPem);
  t.equal(
    (await CertificateAuthority.load(dir)).bundlePem,
    ca.certPem + other.certPem,
    'a bundle without the signing root still trusts it',
  );
  await rm(join(dir, 'bundle.pem'));
  t.equal(
    (await CertificateAuthority.load(dir)).bundlePem,
    ca.certPem,
    'no bundle file: the root alone',
  );
});
