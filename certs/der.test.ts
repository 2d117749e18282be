import t from 'tap';
import { contentOf, encodeOid, readIa5String, readOne, readTlvs, TAG, tlv } from './der.ts';

const MALFORMED = { code: 'POSTERN_MALFORMED_DER' };
const hex = (bytes: Uint8Array) => Buffer.from(bytes).toString('hex');

t.test('object identifiers are encoded as X.690 lays them out', async (t) => {
  t.equal(hex(encodeOid('2.5.29.17')), '551d11');
  t.equal(hex(encodeOid('1.2.840.113549.1.9.14')), '2a864886f70d01090e');
  t.equal(hex(encodeOid('1.2.840.10045.4.3.2')), '2a8648ce3d040302');
});

t.test(
  'lengths on either side of the short and long forms are written minimally and read back',
  async (t) => {
    const headers: Record<number, string> = {
      0: '0400',
      127: '047f',
      128: '048180',
      255: '0481ff',
      256: '04820100',
      65535: '0482ffff',
      65536: '0483010000',
    };
    for (const [length, header] of Object.entries(headers)) {
      const content = new Uint8Array(Number(length)).fill(7);
      const encoded = tlv(TAG.octetString, content);
      t.equal(hex(encoded.subarray(0, header.length / 2)), header, length);
      t.equal(hex(readOne(encoded, TAG.octetString)), hex(content));
    }
  },
);

t.test('TLVs side by side are read in order, each a view of its own content', async (t) => {
  const bytes = Buffer.concat([tlv(TAG.integer, Uint8Array.of(5)), tlv(TAG.sequence)]);
  const [integer, sequence, ...more] = readTlvs(bytes);
  t.equal(hex(contentOf(integer, TAG.integer)), '05');
  t.equal(contentOf(sequence, TAG.sequence).length, 0);
  t.same(more, []);
  t.throws(() => contentOf(integer, TAG.sequence), MALFORMED, 'a tag other than the one expected');
  t.throws(() => contentOf(undefined, TAG.sequence), MALFORMED, 'nothing where a value belongs');
});

t.test('encodings DER does not allow are refused, not guessed at', async (t) => {
  const refused: Record<string, string> = {
    'an indefinite length': '30800000',
    'a length with a leading zero octet': '0482008001',
    'the long form for a length under 128': '04810100',
    'a length of five octets': '04850000000001',
    'a high tag number': '1f0100',
    'content cut short': '3004020101',
    'a length cut short': '0482',
    'a tag with no length': '30',
  };
  for (const [what, hex] of Object.entries(refused)) {
    t.throws(() => readTlvs(Buffer.from(hex, 'hex')), MALFORMED, what);
  }
  t.throws(() => readOne(Buffer.from('05000500', 'hex'), 0x05), MALFORMED, 'bytes after the value');
  t.throws(() => readOne(new Uint8Array(0), TAG.sequence), MALFORMED, 'no value at all');
});

t.test('an IA5String reads as ASCII text, and an octet above 127 is refused', async (t) => {
  t.equal(readIa5String(Buffer.from('spiffe://td/ns/a/sa/b', 'ascii')), 'spiffe://td/ns/a/sa/b');
  t.throws(() => readIa5String(Buffer.from('spiffe://tö', 'latin1')), MALFORMED);
});
