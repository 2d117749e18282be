/**
 * What a peer's certificate proves, read once per certificate after Node's
 * TLS has verified its chain and dates against the trust bundle: whether it
 * may act as a peer at all (a workload's leaf, for the TLS role it is used
 * in), and the one SPIFFE ID it carries.
 */
import { PosternError } from '../common/errors.ts';
import { isSpiffeId } from '../common/spiffe.ts';
import {
  contentOf,
  contextTag,
  encodeOid,
  MalformedDerError,
  readIa5String,
  readOne,
  readTlvs,
  SUBJECT_ALT_NAME_OID,
  TAG,
  type Tlv,
} from './der.ts';

const EXTENSIONS = contextTag(3, true); // TBSCertificate's extensions [3] EXPLICIT
const URI_NAME = contextTag(6, false); // GeneralName's uniformResourceIdentifier [6] IA5String

const hexOf = (bytes: Uint8Array) =>
  Buffer.from(bytes.buffer, bytes.byteOffset, bytes.length).toString('hex');
/** Extensions by the hex of their OID's content octets, the key `extensionsOf` uses. */
const oidKey = (dotted: string) => hexOf(encodeOid(dotted));
const SUBJECT_ALT_NAME = oidKey(SUBJECT_ALT_NAME_OID);
const BASIC_CONSTRAINTS = oidKey('2.5.29.19');
const KEY_USAGE = oidKey('2.5.29.15');
const EXTENDED_KEY_USAGE = oidKey('2.5.29.37');
const ROLE_PURPOSE = {
  server: oidKey('1.3.6.1.5.5.7.3.1'), // id-kp-serverAuth
  client: oidKey('1.3.6.1.5.5.7.3.2'), // id-kp-clientAuth
} as const;

/** The side of a TLS connection a certificate is presented from. */
export type TlsRole = keyof typeof ROLE_PURPOSE;

// keyUsage bits (RFC 5280, 4.2.1.3), numbered from the most significant bit of the first octet.
const DIGITAL_SIGNATURE = 0;
const KEY_CERT_SIGN = 5;
const CRL_SIGN = 6;

/** A peer certificate that chains to the trust bundle yet is refused; each subclass is one reason, with its code. */
export class PeerCertificateError extends PosternError {}

/** A CA certificate (basicConstraints cA TRUE) presented as a peer's own. */
export class PeerNotLeafError extends PeerCertificateError {
  constructor() {
    super(
      'POSTERN_PEER_NOT_LEAF',
      'the peer presented a CA certificate (basicConstraints CA:TRUE), not a workload certificate',
    );
  }
}

/** A certificate whose extendedKeyUsage does not name the TLS role it is presented in. */
export class PeerExtendedKeyUsageError extends PeerCertificateError {
  constructor(role: TlsRole) {
    super(
      'POSTERN_PEER_EXTENDED_KEY_USAGE',
      `the peer's certificate is not for TLS ${role} authentication (its extendedKeyUsage lacks ${role}Auth)`,
    );
  }
}

/** A certificate whose keyUsage is missing, lacks digitalSignature, or allows signing certificates or CRLs. */
export class PeerKeyUsageError extends PeerCertificateError {
  constructor(why: string) {
    super('POSTERN_PEER_KEY_USAGE', `the peer's certificate ${why}`);
  }
}

/** A certificate whose DER the reader cannot follow: it proves nothing and is refused. */
export class PeerCertificateMalformedError extends PeerCertificateError {
  constructor(cause: unknown) {
    super('POSTERN_PEER_MALFORMED', `the peer's certificate cannot be read: ${String(cause)}`, {
      cause,
    });
  }
}

/** Extension ::= SEQUENCE { extnID, critical BOOLEAN DEFAULT FALSE, extnValue OCTET STRING } */
function extensionValue([, second, third, ...more]: Tlv[]): Uint8Array {
  if (more.length > 0 || (third && second?.tag !== TAG.boolean)) {
    throw new MalformedDerError('an extension is its id, an optional critical flag and its value');
  }
  return contentOf(third ?? second, TAG.octetString);
}

/** A certificate's extension values (extnValue contents) by OID; empty when it has none. */
function extensionsOf(der: Uint8Array): Map<string, Uint8Array> {
  const certificate = readTlvs(readOne(der, TAG.sequence));
  if (certificate.length !== 3) {
    throw new MalformedDerError('a certificate is its TBSCertificate, algorithm and signature');
  }
  const values = new Map<string, Uint8Array>();
  // No other TBSCertificate field has the extensions' tag, so finding it by tag is exact.
  const extensions = readTlvs(contentOf(certificate[0], TAG.sequence)).find(
    (field) => field.tag === EXTENSIONS,
  );
  if (!extensions) return values;
  for (const extension of readTlvs(readOne(extensions.value, TAG.sequence))) {
    const fields = readTlvs(contentOf(extension, TAG.sequence));
    const oid = hexOf(contentOf(fields[0], TAG.oid));
    // RFC 5280 allows one instance of an extension; with two, which one is meant is anyone's guess.
    if (values.has(oid)) throw new MalformedDerError('an extension appears twice');
    values.set(oid, extensionValue(fields));
  }
  return values;
}

/** The URI names of a subjectAltName value (GeneralNames). */
function uriNamesOf(generalNames: Uint8Array | undefined): string[] {
  if (!generalNames) return [];
  return readTlvs(readOne(generalNames, TAG.sequence))
    .filter((name) => name.tag === URI_NAME)
    .map((name) => readIa5String(name.value));
}

/**
 * The URI SANs of a DER certificate, read structurally. Node's
 * `X509Certificate.subjectAltName` is one escaped string that is easy to
 * misparse (a comma or "URI:" inside a name), so identity never comes from it.
 * A certificate that cannot be read proves nothing: this returns no names
 * rather than throw, since it runs in TLS callbacks and the request path.
 */
export function uriSansOf(der: Uint8Array): string[] {
  try {
    return uriNamesOf(extensionsOf(der).get(SUBJECT_ALT_NAME));
  } catch {
    return [];
  }
}

/**
 * The SPIFFE ID a certificate proves, or undefined. An X.509-SVID carries
 * exactly one URI SAN (SPIFFE X509-SVID §2: a second one, of whatever scheme,
 * makes it no SVID), and that URI must be a workload SPIFFE ID spelled the
 * one canonical way (common/spiffe.ts): a look-alike proves nothing rather
 * than a principal that policies, headers and logs would take for another.
 */
export function spiffeIdOf(der: Uint8Array): string | undefined {
  const uris = uriSansOf(der);
  return uris.length === 1 && isSpiffeId(uris[0]!) ? uris[0] : undefined;
}

/** Whether keyUsage bit `bit` is set in a BIT STRING's content (its unused-bits octet first). */
function hasBit(bits: Uint8Array, bit: number): boolean {
  const octet = bits[1 + (bit >> 3)] ?? 0;
  return (octet & (0x80 >> (bit & 7))) !== 0;
}

function problemIn(
  extensions: Map<string, Uint8Array>,
  role: TlsRole,
): PeerCertificateError | undefined {
  const basic = extensions.get(BASIC_CONSTRAINTS);
  // BasicConstraints ::= SEQUENCE { cA BOOLEAN DEFAULT FALSE, pathLenConstraint INTEGER OPTIONAL }
  const [ca] = basic ? readTlvs(readOne(basic, TAG.sequence)) : [];
  // DER writes TRUE as 0xff; any other non-zero octet is BER's TRUE, and a CA either way.
  if (ca?.tag === TAG.boolean && ca.value.some((octet) => octet !== 0)) {
    return new PeerNotLeafError();
  }
  const keyUsage = extensions.get(KEY_USAGE);
  if (!keyUsage) return new PeerKeyUsageError('has no keyUsage extension');
  const bits = readOne(keyUsage, TAG.bitString);
  if (bits.length === 0) throw new MalformedDerError('a BIT STRING without its unused-bits octet');
  // TLS 1.3 (and ECDHE in TLS 1.2) proves the key with a signature.
  if (!hasBit(bits, DIGITAL_SIGNATURE)) return new PeerKeyUsageError('lacks digitalSignature');
  if (hasBit(bits, KEY_CERT_SIGN) || hasBit(bits, CRL_SIGN)) {
    return new PeerKeyUsageError('allows signing certificates or CRLs, which no leaf may');
  }
  const purposes = extensions.get(EXTENDED_KEY_USAGE);
  const named =
    purposes &&
    readTlvs(readOne(purposes, TAG.sequence)).some(
      (purpose) => hexOf(contentOf(purpose, TAG.oid)) === ROLE_PURPOSE[role],
    );
  return named ? undefined : new PeerExtendedKeyUsageError(role);
}

/**
 * Why a certificate Node's TLS accepted may still not act as a peer in
 * `role`, or undefined when it may. OpenSSL's purpose check refuses an
 * extendedKeyUsage or keyUsage that excludes the role, but takes a CA
 * certificate as a peer's own, a certificate without extendedKeyUsage as
 * good for anything, and keyAgreement alone as enough for a client. An
 * X.509-SVID is a leaf whose keyUsage has digitalSignature and neither
 * keyCertSign nor cRLSign (SPIFFE X509-SVID §4); and the mesh CA names both
 * TLS roles in every certificate it issues, so one without extendedKeyUsage
 * is not a workload certificate it issued. Never throws (it runs in TLS callbacks): a
 * certificate that cannot be read is refused as malformed.
 */
export function certificateProblemOf(
  der: Uint8Array,
  role: TlsRole,
): PeerCertificateError | undefined {
  try {
    return problemIn(extensionsOf(der), role);
  } catch (error) {
    return new PeerCertificateMalformedError(error);
  }
}

/** What a client certificate proves: it is refused, or it proves a principal (or none). */
export type PeerVerdict =
  | { readonly refused: PeerCertificateError; readonly principal?: undefined }
  | { readonly refused?: undefined; readonly principal: string | undefined };

/**
 * Verdicts on the client certificates of inbound connections. A certificate
 * unfit for a client is refused; a fit one proves its SPIFFE ID when that is
 * of this trust domain (the bundle's roots sign for it alone), else no
 * principal. Peer certificates repeat across connections (every connection
 * from one sidecar presents the same SVID until it rotates), so verdicts are
 * cached by fingerprint. Bounded: a flood of distinct certificates only
 * evicts, it never grows memory.
 */
export class PeerIdentityCache {
  readonly #entries = new Map<string, PeerVerdict>();
  readonly #trustDomainPrefix: string;
  readonly #max: number;

  constructor(trustDomain: string, max = 4096) {
    this.#trustDomainPrefix = `spiffe://${trustDomain}/`;
    this.#max = max;
  }

  verdictOf(fingerprint256: string, der: Uint8Array): PeerVerdict {
    const cached = this.#entries.get(fingerprint256);
    if (cached) return cached;
    const verdict = this.#judge(der);
    if (this.#entries.size >= this.#max) {
      const oldest = this.#entries.keys().next().value as string;
      this.#entries.delete(oldest);
    }
    this.#entries.set(fingerprint256, verdict);
    return verdict;
  }

  #judge(der: Uint8Array): PeerVerdict {
    const refused = certificateProblemOf(der, 'client');
    if (refused) return { refused };
    const id = spiffeIdOf(der);
    return { principal: id?.startsWith(this.#trustDomainPrefix) ? id : undefined };
  }
}
