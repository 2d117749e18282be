import { X509Certificate } from 'node:crypto';
import t from 'tap';
import { CertificateAuthority } from './authority.ts';
import { contextTag, encodeOid, SUBJECT_ALT_NAME_OID, TAG, tlv } from './der.ts';
import { spiffeIdOf, uriSansOf } from './peer-identity.ts';
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
  t.equal(spiffeIdOf(https), ORDERS, 'a URI of another scheme beside it takes nothing away');
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
