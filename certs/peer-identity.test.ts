import { X509Certificate } from 'node:crypto';
import t from 'tap';
import { CertificateAuthority } from './authority.ts';
import { contextTag, encodeOid, SUBJECT_ALT_NAME_OID, TAG, tlv } from './der.ts';
import {
  certificateProblemOf,
  PeerIdentityCache,
  spiffeIdOf,
  type TlsRole,
  uriSansOf,
} from './peer-identity.ts';
import { EC_SIGNING_ALGORITHM, generateKeyPair, x509 } from './x509.ts';

const ORDERS = 'spiffe://cluster.local/ns/shop/sa/orders';
const PAYMENTS = 'spiffe://cluster.local/ns/shop/sa/payments';
const URI = contextTag(6, false);
const DNS = contextTag(2, false);

/** A leaf from `ca` with these SANs, as DER. */
async function issued(
  ca: CertificateAuthority,
  names: { uris?: string[]; dnsNames?: string[]; ipAddresses?: string[] },
): Promise<Buffer> {
  const keys = await generateKeyPair();
  const pem = await ca.issue(keys.publicKey, { uris: [], ...names, ttlMs: 60_000 });
  return new X509Certificate(pem).raw;
}

/** A deterministic pseudo-random source (mulberry32), so that a failing case can be replayed. */
function random(seed: number): () => number {
  let state = seed;
  return () => {
    state = (state + 0x6d2b79f5) | 0;
    let x = Math.imul(state ^ (state >>> 15), 1 | state);
    x = (x + Math.imul(x ^ (x >>> 7), 61 | x)) ^ x;
    return ((x ^ (x >>> 14)) >>> 0) / 2 ** 32;
  };
}

/**
 * The shape of a certificate, unsigned, with `extensions` as given: for
 * encodings a CA would never issue. The reader checks structure, not
 * signatures (TLS has verified the chain before identity is read).
 */
function certificateWith(extensions: Uint8Array[]): Uint8Array {
  const empty = tlv(TAG.sequence);
  const tbs = tlv(
    TAG.sequence,
    tlv(contextTag(0, true), tlv(TAG.integer, Uint8Array.of(2))),
    tlv(TAG.integer, Uint8Array.of(1)),
    empty, // signature algorithm
    empty, // issuer
    empty, // validity
    empty, // subject
    empty, // subjectPublicKeyInfo
    tlv(contextTag(3, true), tlv(TAG.sequence, ...extensions)),
  );
  return tlv(TAG.sequence, tbs, empty, tlv(TAG.bitString, Uint8Array.of(0)));
}

function subjectAltName(names: [tag: number, text: string][], critical = false): Uint8Array {
  const generalNames = tlv(
    TAG.sequence,
    ...names.map(([tag, text]) => tlv(tag, Buffer.from(text, 'latin1'))),
  );
  return tlv(
    TAG.sequence,
    tlv(TAG.oid, encodeOid(SUBJECT_ALT_NAME_OID)),
    ...(critical ? [tlv(TAG.boolean, Uint8Array.of(0xff))] : []),
    tlv(TAG.octetString, generalNames),
  );
}

t.test(
  'a certificate from the CA proves its SPIFFE ID; DNS and IP SANs beside it are not URIs',
  async (t) => {
    const ca = await CertificateAuthority.create('cluster.local');
    const der = await issued(ca, {
      uris: [ORDERS],
      dnsNames: ['orders.shop.svc'],
      ipAddresses: ['127.0.0.1'],
    });
    t.same(uriSansOf(der), [ORDERS]);
    t.equal(spiffeIdOf(der), ORDERS);
    t.same(
      uriSansOf(new X509Certificate(ca.certPem).raw),
      ['spiffe://cluster.local'],
      'the root names its trust domain',
    );
  },
);

t.test('a certificate with no SPIFFE ID, or two, proves no identity', async (t) => {
  const ca = await CertificateAuthority.create('cluster.local');
  const none = await issued(ca, { dnsNames: ['orders'] });
  const two = await issued(ca, { uris: [ORDERS, PAYMENTS] });
  t.same(uriSansOf(none), []);
  t.equal(spiffeIdOf(none), undefined);
  t.same(uriSansOf(two), [ORDERS, PAYMENTS]);
  t.equal(spiffeIdOf(two), undefined);
  const https = await issued(ca, { uris: ['https://orders.example', ORDERS] });
  t.equal(spiffeIdOf(https), undefined, 'a URI of another scheme beside it makes it no SVID');
});

t.test('a certificate without extensions proves no identity', async (t) => {
  const keys = await generateKeyPair();
  const bare = await x509.X509CertificateGenerator.createSelfSigned({
    name: 'CN=no extensions',
    keys,
    signingAlgorithm: EC_SIGNING_ALGORITHM,
    extensions: [],
  });
  t.same(uriSansOf(new Uint8Array(bare.rawData)), []);
});

t.test('URI SANs are read as @peculiar/x509 reads them, for any names the CA issues', async (t) => {
  const ca = await CertificateAuthority.create('cluster.local');
  const next = random(7);
  const pick = (n: number) => Math.floor(next() * n);
  // Printable ASCII, commas and "URI:" included: what trips a parser of Node's subjectAltName string.
  const text = () =>
    Array.from({ length: 1 + pick(40) }, () =>
      pick(8) === 0 ? ', URI:' : String.fromCharCode(0x20 + pick(0x5f)),
    ).join('');
  for (let i = 0; i < 25; i++) {
    const uris = Array.from({ length: pick(4) }, () => `spiffe://cluster.local/${text()}`);
    const dnsNames = Array.from({ length: pick(3) }, (_, n) => `host-${n}.example`);
    const der = await issued(ca, { uris, dnsNames });
    const theirs = new x509.X509Certificate(new Uint8Array(der))
      .getExtension(x509.SubjectAlternativeNameExtension)
      ?.names.items.filter((name) => name.type === 'url')
      .map((name) => name.value);
    t.same(uriSansOf(der), uris, JSON.stringify(uris));
    t.same(uriSansOf(der), theirs ?? []);
  }
});

t.test('a damaged certificate neither throws nor proves another identity', async (t) => {
  const ca = await CertificateAuthority.create('cluster.local');
  const der = await issued(ca, { uris: [ORDERS], dnsNames: ['orders.shop.svc'] });
  const cuts = Array.from({ length: der.length }, (_, length) => length);
  t.same(
    cuts.filter((length) => uriSansOf(der.subarray(0, length)).length > 0),
    [],
    'no cut short copy proves anything',
  );
  const outcomes = new Set<string>();
  // Every octet flipped in turn: where the structure survives, the same identity; else none.
  for (let at = 0; at < der.length; at++) {
    const damaged = Buffer.from(der);
    damaged[at] = damaged[at]! ^ 0xff;
    outcomes.add(JSON.stringify(uriSansOf(damaged)));
  }
  t.same([...outcomes].sort(), [JSON.stringify([]), JSON.stringify([ORDERS])].sort());
});

t.test('garbage proves no identity', async (t) => {
  const next = random(11);
  const proving = Array.from({ length: 2000 }, (_, i) => {
    const bytes = Uint8Array.from({ length: Math.floor(next() * 64) }, () => next() * 256);
    // Half of them start like a certificate, so that the reader gets past the first TLV.
    if (i % 2 && bytes.length > 2) bytes.set([0x30, bytes.length - 2]);
    return bytes;
  }).filter((bytes) => uriSansOf(bytes).length > 0);
  t.same(proving, []);
  t.same(uriSansOf(Buffer.from('30800000', 'hex')), [], 'indefinite length');
});

t.test('names are read from the subjectAltName extension alone, exactly as encoded', async (t) => {
  const one = certificateWith([subjectAltName([[URI, ORDERS]])]);
  t.same(uriSansOf(one), [ORDERS], 'the hand-made shape reads like an issued certificate');
  t.same(uriSansOf(certificateWith([subjectAltName([[URI, ORDERS]], true)])), [ORDERS], 'critical');
  t.same(
    uriSansOf(
      certificateWith([
        subjectAltName([
          [DNS, 'orders'],
          [URI, ORDERS],
        ]),
      ]),
    ),
    [ORDERS],
  );
  const otherExtension = tlv(
    TAG.sequence,
    tlv(TAG.oid, encodeOid('2.5.29.18')), // issuerAltName
    tlv(TAG.octetString, tlv(TAG.sequence, tlv(URI, Buffer.from(PAYMENTS)))),
  );
  t.same(
    uriSansOf(certificateWith([otherExtension])),
    [],
    'URIs of issuerAltName are not the subject',
  );
  t.same(uriSansOf(certificateWith([])), []);
});

t.test('a subjectAltName that RFC 5280 or X.690 forbids proves no identity', async (t) => {
  const refused: Record<string, Uint8Array> = {
    'two subjectAltName extensions': certificateWith([
      subjectAltName([[URI, ORDERS]]),
      subjectAltName([[URI, PAYMENTS]]),
    ]),
    'a URI that is not ASCII': certificateWith([subjectAltName([[URI, `${ORDERS}\u00e9`]])]),
    'a URI in constructed form': certificateWith([subjectAltName([[contextTag(6, true), ORDERS]])]),
    'a critical flag that is not a BOOLEAN': certificateWith([
      tlv(
        TAG.sequence,
        tlv(TAG.oid, encodeOid(SUBJECT_ALT_NAME_OID)),
        tlv(TAG.integer, Uint8Array.of(1)),
        tlv(TAG.octetString, tlv(TAG.sequence, tlv(URI, Buffer.from(ORDERS)))),
      ),
    ]),
    'names that are not a SEQUENCE': certificateWith([
      tlv(
        TAG.sequence,
        tlv(TAG.oid, encodeOid(SUBJECT_ALT_NAME_OID)),
        tlv(TAG.octetString, tlv(TAG.set, tlv(URI, Buffer.from(ORDERS)))),
      ),
    ]),
    'bytes after the certificate': Buffer.concat([
      certificateWith([subjectAltName([[URI, ORDERS]])]),
      Uint8Array.of(0),
    ]),
  };
  for (const [what, der] of Object.entries(refused)) t.same(uriSansOf(der), [], what);
});

/** An extension as a certificate carries it: its OID, the critical flag when set, and its DER value. */
function extension(oid: string, value: Uint8Array, critical = false): Uint8Array {
  return tlv(
    TAG.sequence,
    tlv(TAG.oid, encodeOid(oid)),
    ...(critical ? [tlv(TAG.boolean, Uint8Array.of(0xff))] : []),
    tlv(TAG.octetString, value),
  );
}

/** basicConstraints; `ca` is the cA BOOLEAN's octet, absent (DEFAULT FALSE) when undefined. */
const basicConstraints = (ca?: number) =>
  extension(
    '2.5.29.19',
    tlv(TAG.sequence, ...(ca === undefined ? [] : [tlv(TAG.boolean, Uint8Array.of(ca))])),
    true,
  );

const KEY_USAGE_BITS = {
  digitalSignature: 0,
  keyEncipherment: 2,
  keyAgreement: 4,
  keyCertSign: 5,
  cRLSign: 6,
};

/** keyUsage with these bits set (numbered from the first octet's most significant bit). */
function keyUsage(...names: (keyof typeof KEY_USAGE_BITS)[]): Uint8Array {
  const octets = Uint8Array.of(0, 0, 0); // no unused bits declared; the reader only tests bits
  for (const name of names)
    octets[1 + (KEY_USAGE_BITS[name] >> 3)]! |= 0x80 >> (KEY_USAGE_BITS[name] & 7);
  return extension('2.5.29.15', tlv(TAG.bitString, octets), true);
}

const SERVER_AUTH = '1.3.6.1.5.5.7.3.1';
const CLIENT_AUTH = '1.3.6.1.5.5.7.3.2';
const extendedKeyUsage = (...oids: string[]) =>
  extension('2.5.29.37', tlv(TAG.sequence, ...oids.map((oid) => tlv(TAG.oid, encodeOid(oid)))));

/** What the mesh CA issues, hand-made, with `replace` swapped in for the extensions of the same kind. */
function leafWith(
  replace: Partial<Record<'basic' | 'usage' | 'purposes', Uint8Array | null>> = {},
) {
  const parts = {
    basic: basicConstraints(),
    usage: keyUsage('digitalSignature', 'keyAgreement'),
    purposes: extendedKeyUsage(SERVER_AUTH, CLIENT_AUTH),
    ...replace,
  };
  return certificateWith([
    ...Object.values(parts).filter((part): part is Uint8Array => part !== null),
    subjectAltName([[URI, ORDERS]]),
  ]);
}

const problem = (der: Uint8Array, role: TlsRole) => certificateProblemOf(der, role)?.code;

t.test('a certificate the CA issues is fit for a TLS client and a TLS server', async (t) => {
  const ca = await CertificateAuthority.create('cluster.local');
  const der = await issued(ca, { uris: [ORDERS], dnsNames: ['orders.shop.svc'] });
  t.equal(problem(der, 'client'), undefined);
  t.equal(problem(der, 'server'), undefined);
  t.equal(problem(leafWith(), 'client'), undefined, 'nor is the hand-made shape refused');
  t.equal(problem(leafWith({ basic: null }), 'client'), undefined, 'no basicConstraints is a leaf');
  t.equal(
    problem(leafWith({ basic: basicConstraints(0) }), 'client'),
    undefined,
    'cA FALSE spelled out',
  );
});

t.test('a CA certificate is no peer, however its cA flag is encoded', async (t) => {
  const ca = await CertificateAuthority.create('cluster.local');
  t.equal(
    problem(new X509Certificate(ca.certPem).raw, 'client'),
    'POSTERN_PEER_NOT_LEAF',
    'the root',
  );
  t.equal(problem(leafWith({ basic: basicConstraints(0xff) }), 'client'), 'POSTERN_PEER_NOT_LEAF');
  t.equal(
    problem(leafWith({ basic: basicConstraints(0x01) }), 'server'),
    'POSTERN_PEER_NOT_LEAF',
    'BER TRUE',
  );
});

t.test(
  'key usage must include digitalSignature and exclude certificate and CRL signing',
  async (t) => {
    const cases: [string, Uint8Array | null, string | undefined][] = [
      ['digitalSignature alone', keyUsage('digitalSignature'), undefined],
      ['keyAgreement alone', keyUsage('keyAgreement'), 'POSTERN_PEER_KEY_USAGE'],
      ['keyEncipherment alone', keyUsage('keyEncipherment'), 'POSTERN_PEER_KEY_USAGE'],
      ['with keyCertSign', keyUsage('digitalSignature', 'keyCertSign'), 'POSTERN_PEER_KEY_USAGE'],
      ['with cRLSign', keyUsage('digitalSignature', 'cRLSign'), 'POSTERN_PEER_KEY_USAGE'],
      ['no keyUsage extension', null, 'POSTERN_PEER_KEY_USAGE'],
    ];
    for (const [what, usage, expected] of cases) {
      t.equal(problem(leafWith({ usage }), 'client'), expected, what);
    }
  },
);

t.test('the extended key usage must name the role the certificate is presented in', async (t) => {
  const serverOnly = leafWith({ purposes: extendedKeyUsage(SERVER_AUTH) });
  const clientOnly = leafWith({ purposes: extendedKeyUsage(CLIENT_AUTH) });
  t.equal(problem(serverOnly, 'server'), undefined);
  t.equal(problem(serverOnly, 'client'), 'POSTERN_PEER_EXTENDED_KEY_USAGE');
  t.equal(problem(clientOnly, 'client'), undefined);
  t.equal(problem(clientOnly, 'server'), 'POSTERN_PEER_EXTENDED_KEY_USAGE');
  const anyPurpose = leafWith({ purposes: extendedKeyUsage('2.5.29.37.0') });
  t.equal(problem(anyPurpose, 'client'), 'POSTERN_PEER_EXTENDED_KEY_USAGE', 'anyExtendedKeyUsage');
  t.equal(
    problem(leafWith({ purposes: null }), 'client'),
    'POSTERN_PEER_EXTENDED_KEY_USAGE',
    'none',
  );
  t.match(certificateProblemOf(serverOnly, 'client'), { message: /lacks clientAuth/ });
});

t.test('a certificate whose extensions cannot be read is refused as malformed', async (t) => {
  const malformed: Record<string, Uint8Array> = {
    'keyUsage twice': certificateWith([
      keyUsage('digitalSignature'),
      keyUsage('digitalSignature'),
      extendedKeyUsage(CLIENT_AUTH),
    ]),
    'a keyUsage BIT STRING without content': leafWith({
      usage: extension('2.5.29.15', tlv(TAG.bitString), true),
    }),
    'a purpose that is not an OID': leafWith({
      purposes: extension('2.5.29.37', tlv(TAG.sequence, tlv(TAG.integer, Uint8Array.of(1)))),
    }),
    'basicConstraints that are not a SEQUENCE': leafWith({
      basic: extension('2.5.29.19', tlv(TAG.boolean, Uint8Array.of(0xff))),
    }),
    garbage: Buffer.from('30800000', 'hex'),
  };
  for (const [what, der] of Object.entries(malformed)) {
    t.equal(problem(der, 'client'), 'POSTERN_PEER_MALFORMED', what);
  }
});

t.test('only a workload SPIFFE ID in its one canonical spelling is proved', async (t) => {
  const lookAlikes = [
    `${ORDERS}/`,
    'spiffe://cluster.local/ns/shop/sa/./orders',
    'spiffe://cluster.local/ns/shop/sa/x/../orders',
    'spiffe://cluster.local/ns/shop/sa/%6frders',
    'SPIFFE://cluster.local/ns/shop/sa/orders',
    'spiffe://Cluster.Local/ns/shop/sa/orders',
    `${ORDERS}?x=1`,
    `${ORDERS}#x`,
    'spiffe://cluster.local:443/ns/shop/sa/orders',
    'spiffe://u@cluster.local/ns/shop/sa/orders',
    `${ORDERS}\u0000`,
    `${ORDERS} `,
    'spiffe://cluster.local',
    'spiffe://cluster.local/',
  ];
  for (const uri of lookAlikes) {
    t.equal(
      spiffeIdOf(certificateWith([subjectAltName([[URI, uri]])])),
      undefined,
      JSON.stringify(uri),
    );
  }
});

t.test(
  'the identity cache refuses unfit certificates and proves only its own trust domain',
  async (t) => {
    const ca = await CertificateAuthority.create('cluster.local');
    const identities = new PeerIdentityCache('cluster.local', 2);
    t.same(identities.verdictOf('ours', await issued(ca, { uris: [ORDERS] })), {
      principal: ORDERS,
    });
    t.same(
      identities.verdictOf(
        'theirs',
        await issued(ca, { uris: ['spiffe://example.org/ns/shop/sa/orders'] }),
      ),
      { principal: undefined },
    );
    const ca2 = await CertificateAuthority.create('cluster.local');
    t.match(identities.verdictOf('root', new X509Certificate(ca2.certPem).raw), {
      refused: { code: 'POSTERN_PEER_NOT_LEAF' },
    });
    t.match(
      identities.verdictOf('ours', new Uint8Array(0)),
      { refused: { code: 'POSTERN_PEER_MALFORMED' } },
      'evicted past its bound: the fingerprint is read afresh',
    );
    t.match(
      identities.verdictOf('root', new Uint8Array(0)),
      { refused: { code: 'POSTERN_PEER_NOT_LEAF' } },
      'a cached verdict is not read again',
    );
  },
);
