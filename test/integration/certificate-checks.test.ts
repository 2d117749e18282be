/**
 * The certificate checks a security reviewer tries, each over real sockets:
 * client certificates at a sidecar's inbound mTLS handshake, server
 * certificates on its outbound mesh connections, and CSRs at the control
 * plane's API. The bad certificates are signed with the mesh CA's own key
 * (read from the control plane's state folder, as an attacker holding a
 * mis-issued certificate would have it), so that only the property under
 * test is wrong and Node's chain check passes wherever it can.
 */
import { readFile } from 'node:fs/promises';
import { createServer, request as httpsRequest } from 'node:https';
import type { AddressInfo } from 'node:net';
import { join } from 'node:path';
import t from 'tap';
import { Agent, type Dispatcher, request } from 'undici';
import { CA_FILES, CertificateAuthority } from '../../certs/authority.ts';
import {
  EC_SIGNING_ALGORITHM,
  generateKeyPair,
  privateKeyFromPem,
  privateKeyToPem,
  x509,
} from '../../certs/x509.ts';
import type { RegistryEntry } from '../../common/wire.ts';
import { workloadDnsNames } from '../../control-plane/api/caller.ts';
import { statePaths } from '../../control-plane/state.ts';
import {
  certificatePoster,
  clientCredentials,
  type PemCredentials,
  startEchoApp,
  startOutboundListener,
  startTestMesh,
  type TestMesh,
  untilReady,
} from '../helpers.ts';

const A = 'spiffe://cluster.local/ns/default/sa/a';
const B = 'spiffe://cluster.local/ns/default/sa/b';
const ORDERS = 'spiffe://cluster.local/ns/shop/sa/orders';
const PAYMENTS = 'spiffe://cluster.local/ns/shop/sa/payments';
const HOUR = 3600_000;
const KU = x509.KeyUsageFlags;
const EKU = x509.ExtendedKeyUsage;
const ANY_EXTENDED_KEY_USAGE = '2.5.29.37.0';

/** The mesh CA as a signer of anything: its certificate and private key. */
interface Signer {
  readonly certificate: x509.X509Certificate;
  readonly key: CryptoKey;
}

async function meshSigner(mesh: TestMesh): Promise<Signer> {
  const dir = statePaths(mesh.stateDir).ca;
  const [certPem, keyPem] = await Promise.all([
    readFile(join(dir, CA_FILES.cert), 'utf8'),
    readFile(join(dir, CA_FILES.key), 'utf8'),
  ]);
  return { certificate: new x509.X509Certificate(certPem), key: privateKeyFromPem(keyPem) };
}

/** A certificate's shape; each field defaults to what the mesh CA issues (null: no such extension). */
interface Profile {
  readonly uris?: readonly string[];
  readonly notBefore?: Date;
  readonly notAfter?: Date;
  readonly ca?: boolean | null;
  readonly keyUsage?: number | null;
  readonly extendedKeyUsage?: readonly string[] | null;
}

function extensionsOf(profile: Profile): x509.Extension[] {
  const {
    uris = [A],
    ca = false,
    keyUsage = KU.digitalSignature | KU.keyAgreement,
    extendedKeyUsage = [EKU.serverAuth, EKU.clientAuth],
  } = profile;
  return [
    ...(ca === null ? [] : [new x509.BasicConstraintsExtension(ca, undefined, true)]),
    ...(keyUsage === null ? [] : [new x509.KeyUsagesExtension(keyUsage, true)]),
    ...(extendedKeyUsage === null
      ? []
      : [new x509.ExtendedKeyUsageExtension([...extendedKeyUsage], false)]),
    new x509.SubjectAlternativeNameExtension(
      uris.map((value) => ({ type: 'url' as const, value })),
    ),
  ];
}

/** Credentials whose certificate `signer` signed with `profile`, presented with the mesh bundle. */
async function signedBy(signer: Signer, profile: Profile = {}): Promise<PemCredentials> {
  const keys = await generateKeyPair();
  const cert = await x509.X509CertificateGenerator.create({
    subject: 'O=cluster.local',
    issuer: signer.certificate.subject,
    notBefore: profile.notBefore ?? new Date(Date.now() - 60_000),
    notAfter: profile.notAfter ?? new Date(Date.now() + HOUR),
    signingAlgorithm: EC_SIGNING_ALGORITHM,
    publicKey: keys.publicKey,
    signingKey: signer.key,
    extensions: [
      ...extensionsOf(profile),
      await x509.AuthorityKeyIdentifierExtension.create(signer.certificate, false),
    ],
  });
  return {
    cert: cert.toString('pem'),
    key: privateKeyToPem(keys.privateKey),
    ca: signer.certificate.toString('pem'),
  };
}

/** A certificate that signs itself, under `name`, otherwise shaped as the mesh CA issues. */
async function selfSigned(name: string, bundle: string): Promise<PemCredentials> {
  const keys = await generateKeyPair();
  const cert = await x509.X509CertificateGenerator.createSelfSigned({
    name,
    keys,
    signingAlgorithm: EC_SIGNING_ALGORITHM,
    extensions: extensionsOf({}),
  });
  return { cert: cert.toString('pem'), key: privateKeyToPem(keys.privateKey), ca: bundle };
}

/** URI SANs that read like a SPIFFE ID but are not one, each with the trick it tries. */
const LOOK_ALIKES: Record<string, string> = {
  'a trailing slash': `${A}/`,
  'a dot segment': 'spiffe://cluster.local/ns/default/sa/./a',
  'a dot-dot segment': 'spiffe://cluster.local/ns/default/sa/b/../a',
  'a percent-encoded service account': 'spiffe://cluster.local/ns/default/sa/%61',
  'an upper-case scheme': 'SPIFFE://cluster.local/ns/default/sa/a',
  'an upper-case trust domain': 'spiffe://CLUSTER.LOCAL/ns/default/sa/a',
  'a query': `${A}?admin=1`,
  'a fragment': `${A}#admin`,
  'a port': 'spiffe://cluster.local:443/ns/default/sa/a',
  'user info': 'spiffe://a@cluster.local/ns/default/sa/a',
  'a NUL octet': `${A}\u0000.example`,
  'an empty DNS label in the service account': 'spiffe://cluster.local/ns/default/sa/a..b',
};

t.test('client certificates at the inbound mTLS handshake', async (t) => {
  // Every principal is admitted, so what the sidecar makes of a certificate shows as is.
  const mesh = await startTestMesh(t, '', { meshDefault: 'allow-authenticated' });
  const app = await startEchoApp(t);
  const sidecar = await mesh.startSidecar({
    workload: 'orders',
    namespace: 'shop',
    appPort: app.port,
  });
  await untilReady(sidecar.adminPort);
  const signer = await meshSigner(mesh);
  const bundle = mesh.controlPlane.ca.bundlePem;

  const handshakeFailures = async () => {
    const stats = (await (
      await request(`http://127.0.0.1:${sidecar.adminPort}/stats`)
    ).body.json()) as { handshakeFailures: Record<string, number> };
    return Object.values(stats.handshakeFailures).reduce((a, b) => a + b, 0);
  };

  /**
   * What became of one request with `credentials`: "refused at the
   * handshake" (no response, the app saw nothing, the sidecar counted a
   * handshake failure), or the status with the error code or the principal
   * the app was told.
   */
  const outcome = async (credentials: PemCredentials): Promise<string> => {
    const failures = await handshakeFailures();
    const seen = app.requests.length;
    const response = await new Promise<{ status: number; body: string } | { error: string }>(
      (resolve) => {
        const req = httpsRequest(`https://127.0.0.1:${sidecar.inboundPort}/orders`, {
          ...credentials,
          agent: false,
          checkServerIdentity: () => undefined,
        });
        req.on('response', async (res) => {
          let body = '';
          for await (const chunk of res) body += chunk;
          resolve({ status: res.statusCode ?? 0, body });
        });
        req.on('error', (e: NodeJS.ErrnoException) => resolve({ error: e.code ?? e.message }));
        req.end();
      },
    );
    const counted = (await handshakeFailures()) - failures;
    if ('error' in response) {
      return counted === 1 && app.requests.length === seen
        ? 'refused at the handshake'
        : `no response (${response.error}), ${counted} handshake failures counted`;
    }
    const body = JSON.parse(response.body) as {
      error?: { code: string };
      headers?: Record<string, string>;
    };
    return response.status === 200
      ? `200 as ${body.headers?.['x-postern-principal']}`
      : `${response.status} ${body.error?.code}`;
  };

  await t.test('a certificate shaped as the mesh CA issues them is accepted', async (t) => {
    t.equal(await outcome(await signedBy(signer)), `200 as ${A}`);
  });

  await t.test('an expired certificate is refused at the handshake', async (t) => {
    const expired = await signedBy(signer, {
      notBefore: new Date(Date.now() - 2 * HOUR),
      notAfter: new Date(Date.now() - HOUR),
    });
    t.equal(await outcome(expired), 'refused at the handshake');
  });

  await t.test('a certificate not yet valid is refused at the handshake', async (t) => {
    const early = await signedBy(signer, {
      notBefore: new Date(Date.now() + HOUR),
      notAfter: new Date(Date.now() + 2 * HOUR),
    });
    t.equal(await outcome(early), 'refused at the handshake');
  });

  await t.test('a certificate signed by another CA is refused at the handshake', async (t) => {
    const other = await clientCredentials(await CertificateAuthority.create('cluster.local'), A);
    t.equal(await outcome({ ...other, ca: bundle }), 'refused at the handshake');
  });

  await t.test('a self-signed certificate is refused at the handshake', async (t) => {
    t.equal(await outcome(await selfSigned('CN=a', bundle)), 'refused at the handshake');
    const namedLikeTheCa = await selfSigned(signer.certificate.subject, bundle);
    t.equal(
      await outcome(namedLikeTheCa),
      'refused at the handshake',
      "even under the mesh CA's own name",
    );
  });

  await t.test(
    'a CA certificate (basicConstraints CA:true) presented as a client certificate is refused at the handshake',
    async (t) => {
      const ca = await signedBy(signer, {
        ca: true,
        keyUsage: KU.digitalSignature | KU.keyCertSign | KU.cRLSign,
      });
      t.equal(await outcome(ca), 'refused at the handshake');
      const caWithLeafUsages = await signedBy(signer, { ca: true });
      t.equal(await outcome(caWithLeafUsages), 'refused at the handshake', 'with leaf key usages');
    },
  );

  await t.test(
    'a certificate without the clientAuth extended key usage is refused at the handshake',
    async (t) => {
      const serverOnly = await signedBy(signer, { extendedKeyUsage: [EKU.serverAuth] });
      t.equal(await outcome(serverOnly), 'refused at the handshake', 'serverAuth only');
      const none = await signedBy(signer, { extendedKeyUsage: null });
      t.equal(await outcome(none), 'refused at the handshake', 'no extendedKeyUsage extension');
      const any = await signedBy(signer, { extendedKeyUsage: [ANY_EXTENDED_KEY_USAGE] });
      t.equal(await outcome(any), 'refused at the handshake', 'anyExtendedKeyUsage');
    },
  );

  await t.test(
    'a certificate whose key usage lacks digitalSignature, or allows certificate signing, is refused at the handshake',
    async (t) => {
      const keyAgreement = await signedBy(signer, { keyUsage: KU.keyAgreement });
      t.equal(await outcome(keyAgreement), 'refused at the handshake', 'keyAgreement only');
      const encipherment = await signedBy(signer, { keyUsage: KU.keyEncipherment });
      t.equal(await outcome(encipherment), 'refused at the handshake', 'keyEncipherment only');
      const none = await signedBy(signer, { keyUsage: null });
      t.equal(await outcome(none), 'refused at the handshake', 'no keyUsage extension');
      const signing = await signedBy(signer, {
        ca: null,
        keyUsage: KU.digitalSignature | KU.keyCertSign,
      });
      t.equal(await outcome(signing), 'refused at the handshake', 'keyCertSign on a leaf');
    },
  );

  await t.test(
    'a certificate with two URI SANs proves no identity, whichever the other is',
    async (t) => {
      for (const uris of [
        [A, B],
        [A, A],
        [A, 'https://a.example'],
      ]) {
        t.equal(
          await outcome(await signedBy(signer, { uris })),
          '403 POSTERN_NO_IDENTITY',
          uris.join(' and '),
        );
      }
    },
  );

  await t.test('a SPIFFE ID of another trust domain proves no identity here', async (t) => {
    for (const id of [
      'spiffe://example.org/ns/default/sa/a',
      'spiffe://cluster.local.example.org/ns/default/sa/a',
    ]) {
      t.equal(await outcome(await signedBy(signer, { uris: [id] })), '403 POSTERN_NO_IDENTITY', id);
    }
  });

  await t.test(
    'a prefix look-alike is its own principal, never the one it resembles',
    async (t) => {
      const ab = 'spiffe://cluster.local/ns/default/sa/ab';
      t.equal(await outcome(await signedBy(signer, { uris: [ab] })), `200 as ${ab}`);
    },
  );

  await t.test('a URI SAN that only reads like a SPIFFE ID proves no identity', async (t) => {
    for (const [trick, uri] of Object.entries(LOOK_ALIKES)) {
      t.equal(
        await outcome(await signedBy(signer, { uris: [uri] })),
        '403 POSTERN_NO_IDENTITY',
        `${trick}: ${JSON.stringify(uri)}`,
      );
    }
  });
});

t.test('server certificates on outbound mesh connections', async (t) => {
  const mesh = await startTestMesh(t, '');
  const signer = await meshSigner(mesh);

  /** A peer sidecar's stand-in serving `credentials`; counts the requests that reach it. */
  const peer = async (credentials: PemCredentials) => {
    const served = { requests: 0, address: '' };
    const server = createServer(credentials, (_req, res) => {
      served.requests++;
      res.end('reached');
    });
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    t.teardown(() => new Promise((resolve) => server.close(resolve)));
    served.address = `127.0.0.1:${(server.address() as AddressInfo).port}`;
    return served;
  };

  const cases: Record<string, { profile: Profile; expected: string }> = {
    'a certificate shaped as the mesh CA issues them': {
      profile: { uris: [ORDERS] },
      expected: '200',
    },
    'a CA certificate': {
      profile: { uris: [ORDERS], ca: true },
      expected: '502 POSTERN_PEER_NOT_LEAF',
    },
    'a certificate without the serverAuth extended key usage': {
      profile: { uris: [ORDERS], extendedKeyUsage: [EKU.clientAuth] },
      expected: '502 POSTERN_UPSTREAM_TLS',
    },
    'a certificate without an extendedKeyUsage extension': {
      profile: { uris: [ORDERS], extendedKeyUsage: null },
      expected: '502 POSTERN_PEER_EXTENDED_KEY_USAGE',
    },
    'a certificate whose key usage lacks digitalSignature': {
      profile: { uris: [ORDERS], keyUsage: KU.keyAgreement },
      expected: '502 POSTERN_PEER_KEY_USAGE',
    },
    'an expired certificate': {
      profile: {
        uris: [ORDERS],
        notBefore: new Date(Date.now() - 2 * HOUR),
        notAfter: new Date(Date.now() - HOUR),
      },
      expected: '502 POSTERN_UPSTREAM_TLS',
    },
    'the expected SPIFFE ID beside a URI of another scheme': {
      profile: { uris: [ORDERS, 'https://orders.example'] },
      expected: '502 POSTERN_PEER_IDENTITY_MISMATCH',
    },
    'the expected SPIFFE ID with a trailing slash': {
      profile: { uris: [`${ORDERS}/`] },
      expected: '502 POSTERN_PEER_IDENTITY_MISMATCH',
    },
  };
  const peers = await Promise.all(
    Object.values(cases).map(async ({ profile }) => peer(await signedBy(signer, profile))),
  );
  const registry: RegistryEntry[] = peers.map((served, i) => ({
    service: `peer-${i}`,
    namespace: 'shop',
    address: served.address,
    spiffeId: ORDERS,
  }));
  const { port } = await startOutboundListener(t, mesh.controlPlane.ca, registry);

  for (const [i, [what, { expected }]] of Object.entries(cases).entries()) {
    await t.test(`outbound: ${what} gets ${expected}`, async (t) => {
      const res = await request(`http://127.0.0.1:${port}/`, { headers: { host: `peer-${i}` } });
      const text = await res.body.text();
      const code =
        res.statusCode === 200
          ? ''
          : ` ${(JSON.parse(text) as { error: { code: string } }).error.code}`;
      t.equal(`${res.statusCode}${code}`, expected);
      if (res.statusCode !== 200) t.equal(peers[i]!.requests, 0, 'no request reached the peer');
    });
  }
});

t.test('CSRs at the control plane', async (t) => {
  const mesh = await startTestMesh(t, '');
  const token = (await readFile(await mesh.tokenFor('orders', 'shop'), 'utf8')).trim();
  const post = certificatePoster(t, mesh);
  const outcome = async (body: unknown, dispatcher?: Dispatcher) => {
    const res = await post(body, dispatcher);
    return res.status === 200 ? '200' : `${res.status} ${res.body.error?.code}`;
  };

  /** A CSR over a new key, built with @peculiar/x509 so that it can ask for anything. */
  const csr = async (uris: readonly string[], extensions: x509.Extension[] = [], name = '') => {
    const keys = await generateKeyPair();
    const request = await x509.Pkcs10CertificateRequestGenerator.create({
      name,
      keys,
      signingAlgorithm: EC_SIGNING_ALGORITHM,
      extensions: [
        new x509.SubjectAlternativeNameExtension(
          uris.map((value) => ({ type: 'url' as const, value })),
        ),
        ...extensions,
      ],
    });
    return { csr: request.toString('pem'), keys };
  };

  await t.test(
    'a CSR asking for two URI SANs is refused, whatever the second one is',
    async (t) => {
      for (const uris of [
        [ORDERS, PAYMENTS],
        [ORDERS, ORDERS],
        [ORDERS, 'https://orders.example'],
      ]) {
        t.equal(
          await outcome({ csr: (await csr(uris)).csr, token }),
          '403 POSTERN_CSR_REJECTED',
          uris.join(' and '),
        );
      }
    },
  );

  await t.test('a CSR asking for a SPIFFE ID of another trust domain is refused', async (t) => {
    const other = 'spiffe://example.org/ns/shop/sa/orders';
    t.equal(await outcome({ csr: (await csr([other])).csr, token }), '403 POSTERN_CSR_REJECTED');
  });

  await t.test(
    'a CSR asking for an ID the bootstrap token does not prove is refused',
    async (t) => {
      t.equal(
        await outcome({ csr: (await csr([PAYMENTS])).csr, token }),
        '403 POSTERN_CSR_REJECTED',
      );
      t.equal(
        await outcome({ csr: (await csr([])).csr, token }),
        '403 POSTERN_CSR_REJECTED',
        'none',
      );
    },
  );

  await t.test("a CSR asking for a look-alike of the token's ID is refused", async (t) => {
    const lookAlikes = {
      'a prefix look-alike': `${ORDERS}x`,
      'a trailing slash': `${ORDERS}/`,
      'a percent-encoded service account': 'spiffe://cluster.local/ns/shop/sa/%6frders',
      'an upper-case scheme': 'SPIFFE://cluster.local/ns/shop/sa/orders',
      'an upper-case trust domain': 'spiffe://CLUSTER.LOCAL/ns/shop/sa/orders',
      'a query': `${ORDERS}?x=1`,
      'a fragment': `${ORDERS}#x`,
    };
    for (const [trick, uri] of Object.entries(lookAlikes)) {
      t.equal(
        await outcome({ csr: (await csr([uri])).csr, token }),
        '403 POSTERN_CSR_REJECTED',
        trick,
      );
    }
  });

  await t.test(
    'a CSR asking to be a CA, with other key usages and names, gets a leaf shaped by the CA alone',
    async (t) => {
      const asked = await csr(
        [ORDERS],
        [
          new x509.BasicConstraintsExtension(true, 0, true),
          new x509.KeyUsagesExtension(KU.keyCertSign | KU.cRLSign | KU.digitalSignature, true),
          new x509.ExtendedKeyUsageExtension([EKU.codeSigning, ANY_EXTENDED_KEY_USAGE], false),
          new x509.SubjectAlternativeNameExtension([
            { type: 'dns', value: 'control-plane.postern-system.svc' },
            { type: 'ip', value: '10.0.0.1' },
          ]),
        ],
        'CN=Postern root CA, O=cluster.local',
      );
      const res = await post({ csr: asked.csr, token });
      t.equal(res.status, 200);
      const issued = new x509.X509Certificate(res.body.certificateChain);
      const basic = issued.getExtension(x509.BasicConstraintsExtension);
      t.equal(basic?.ca, false, 'basicConstraints CA:false');
      t.equal(
        issued.getExtension(x509.KeyUsagesExtension)?.usages,
        KU.digitalSignature | KU.keyAgreement,
        'no keyCertSign or cRLSign',
      );
      t.same(issued.getExtension(x509.ExtendedKeyUsageExtension)?.usages, [
        EKU.serverAuth,
        EKU.clientAuth,
      ]);
      const names = issued.getExtension(x509.SubjectAlternativeNameExtension)?.names.items ?? [];
      t.same(
        names.map((name) => `${name.type}:${name.value}`),
        [`url:${ORDERS}`, ...workloadDnsNames('orders', 'shop').map((name) => `dns:${name}`)],
        'the names the token proves, none of those asked for',
      );
      t.equal(issued.subject, 'O=cluster.local', 'the subject asked for is ignored');
      t.equal(issued.issuer, mesh.controlPlane.ca.certificate.subject);
    },
  );

  await t.test(
    'a renewal presenting a certificate unfit for a client is unauthenticated',
    async (t) => {
      const signer = await meshSigner(mesh);
      const renewWith = async (profile: Profile) => {
        const credentials = await signedBy(signer, { uris: [ORDERS], ...profile });
        const agent = new Agent({ connect: credentials });
        t.teardown(() => agent.close());
        return outcome({ csr: (await csr([ORDERS])).csr }, agent);
      };
      t.equal(await renewWith({}), '200', 'a certificate shaped as the mesh CA issues them renews');
      t.equal(await renewWith({ ca: true }), '401 POSTERN_UNAUTHENTICATED', 'a CA certificate');
      t.equal(
        await renewWith({ extendedKeyUsage: [EKU.serverAuth] }),
        '401 POSTERN_UNAUTHENTICATED',
        'serverAuth only',
      );
      t.equal(
        await renewWith({ uris: [ORDERS, 'https://orders.example'] }),
        '401 POSTERN_UNAUTHENTICATED',
        'two URI SANs',
      );
    },
  );
});
