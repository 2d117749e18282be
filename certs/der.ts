/**
 * The little DER the sidecar speaks: reading a certificate down to its
 * extensions, and writing one PKCS#10 request. Not an ASN.1 library: the
 * sidecar loads no certificate library (issue 7: @peculiar/x509 cost it
 * ~10 MB RSS, the @peculiar/asn1-* schemas ~7 MB), and asn1js, as light as
 * this file, would give only the TLV layer below (the walk through a
 * certificate is ours either way) while reading BER leniently where identity
 * wants DER's one encoding. The control plane keeps @peculiar/x509.
 */
import { PosternError } from '../common/errors.ts';

/** Bytes that are not the DER the reader expects; a peer's certificate that is proves nothing. */
export class MalformedDerError extends PosternError {
  constructor(why: string) {
    super('POSTERN_MALFORMED_DER', `malformed DER: ${why}`);
  }
}

/** Universal tags (X.690), constructed where the type is. */
export const TAG = {
  boolean: 0x01,
  integer: 0x02,
  bitString: 0x03,
  octetString: 0x04,
  oid: 0x06,
  sequence: 0x30,
  set: 0x31,
} as const;

/** A context-specific tag [n]: constructed for EXPLICIT tagging, or IMPLICIT tagging of a constructed type. */
export function contextTag(n: number, constructed: boolean): number {
  return 0x80 | (constructed ? 0x20 : 0) | n;
}

/** subjectAltName (RFC 5280, 4.2.1.6), the extension that carries a SPIFFE ID. */
export const SUBJECT_ALT_NAME_OID = '2.5.29.17';

export interface Tlv {
  readonly tag: number;
  /** The content octets, a view into the bytes read (no copy). */
  readonly value: Uint8Array;
}

/** The length at `at` and where the content starts, checked against the DER rules and `bytes`' end. */
function readLength(bytes: Uint8Array, at: number): { length: number; start: number } {
  if (at >= bytes.length) throw new MalformedDerError('truncated before a length');
  const first = bytes[at]!;
  if (first < 0x80) return { length: first, start: at + 1 };
  const count = first & 0x7f;
  if (count === 0) throw new MalformedDerError('indefinite length (BER, not DER)');
  // Four octets already span more than any certificate; more only hides overflow.
  if (count > 4) throw new MalformedDerError('length of more than four octets');
  if (at + 1 + count > bytes.length) throw new MalformedDerError('truncated inside a length');
  if (bytes[at + 1] === 0) throw new MalformedDerError('length with a leading zero octet');
  let length = 0;
  for (let i = 1; i <= count; i++) length = length * 256 + bytes[at + i]!;
  if (length < 0x80) throw new MalformedDerError('long form for a short length');
  return { length, start: at + 1 + count };
}

/** The TLVs that fill `bytes` exactly, in order; anything left over or cut short is malformed. */
export function readTlvs(bytes: Uint8Array): Tlv[] {
  const tlvs: Tlv[] = [];
  let at = 0;
  while (at < bytes.length) {
    const tag = bytes[at]!;
    // Tag numbers above 30 appear nowhere in the structures read here.
    if ((tag & 0x1f) === 0x1f) throw new MalformedDerError('high tag number form');
    const { length, start } = readLength(bytes, at + 1);
    if (length > bytes.length - start) throw new MalformedDerError('content runs past its end');
    tlvs.push({ tag, value: bytes.subarray(start, start + length) });
    at = start + length;
  }
  return tlvs;
}

/** The content of `tlv`, which must be there and carry `tag`. */
export function contentOf(tlv: Tlv | undefined, tag: number): Uint8Array {
  if (tlv?.tag !== tag) {
    throw new MalformedDerError(
      `expected tag 0x${tag.toString(16)}, found ${tlv ? `0x${tlv.tag.toString(16)}` : 'nothing'}`,
    );
  }
  return tlv.value;
}

/** The content of the single TLV, tagged `tag`, that `bytes` consists of. */
export function readOne(bytes: Uint8Array, tag: number): Uint8Array {
  const tlvs = readTlvs(bytes);
  if (tlvs.length > 1) throw new MalformedDerError('bytes after the value');
  return contentOf(tlvs[0], tag);
}

/** An IA5String's content as text; IA5 is 7-bit, so any other octet is malformed. */
export function readIa5String(value: Uint8Array): string {
  if (value.some((octet) => octet > 0x7f)) {
    throw new MalformedDerError('an IA5String holds ASCII only');
  }
  return Buffer.from(value.buffer, value.byteOffset, value.length).toString('latin1');
}

function encodeLength(length: number): number[] {
  if (length < 0x80) return [length];
  const octets: number[] = [];
  for (let rest = length; rest > 0; rest = Math.floor(rest / 256)) octets.unshift(rest % 256);
  return [0x80 | octets.length, ...octets];
}

/** One TLV whose content is `contents` concatenated. */
export function tlv(tag: number, ...contents: Uint8Array[]): Uint8Array {
  const length = contents.reduce((sum, part) => sum + part.length, 0);
  return Buffer.concat([Uint8Array.of(tag, ...encodeLength(length)), ...contents]);
}

/** The content octets of an OBJECT IDENTIFIER given in dotted form (X.690, 8.19). */
export function encodeOid(dotted: string): Uint8Array {
  const [first = 0, second = 0, ...rest] = dotted.split('.').map(Number);
  const octets: number[] = [];
  for (const arc of [first * 40 + second, ...rest]) {
    const base128 = [arc % 128];
    for (let high = Math.floor(arc / 128); high > 0; high = Math.floor(high / 128)) {
      base128.unshift(0x80 | (high % 128));
    }
    octets.push(...base128);
  }
  return Uint8Array.from(octets);
}
