import {
  contentOf,
  contextTag,
  encodeOid,
  MalformedDerError,
  readIa5String,
  readOne,
  readTlvs,
  SUBJECT_ALT_NAME_OID,
  sameBytes,
  TAG,
  type Tlv,
} from './der.ts';

const EXTENSIONS = contextTag(3, true); // TBSCertificate's extensions [3] EXPLICIT
const URI_NAME = contextTag(6, false); // GeneralName's uniformResourceIdentifier [6] IA5String
const SUBJECT_ALT_NAME = encodeOid(SUBJECT_ALT_NAME_OID);

/** Extension ::= SEQUENCE { extnID, critical BOOLEAN DEFAULT FALSE, extnValue OCTET STRING } */
function extensionValue([, second, third, ...more]: Tlv[]): Uint8Array {
  if (more.length > 0 || (third && second?.tag !== TAG.boolean)) {
    throw new MalformedDerError('an extension is its id, an optional critical flag and its value');
  }
  return contentOf(third ?? second, TAG.octetString);
}

/** The subjectAltName extension's value (GeneralNames), or undefined when the certificate has none. */
function subjectAltNameOf(der: Uint8Array): Uint8Array | undefined {
  const certificate = readTlvs(readOne(der, TAG.sequence));
  if (certificate.length !== 3) {
    throw new MalformedDerError('a certificate is its TBSCertificate, algorithm and signature');
  }
  // No other TBSCertificate field has the extensions' tag, so finding it by tag is exact.
  const extensions = readTlvs(contentOf(certificate[0], TAG.sequence)).find(
    (field) => field.tag === EXTENSIONS,
  );
  if (!extensions) return undefined;
  let found: Uint8Array | undefined;
  for (const extension of readTlvs(readOne(extensions.value, TAG.sequence))) {
    const fields = readTlvs(contentOf(extension, TAG.sequence));
    if (!sameBytes(contentOf(fields[0], TAG.oid), SUBJECT_ALT_NAME)) continue;
    // RFC 5280 allows one instance of an extension; with two, which names are meant is anyone's guess.
    if (found) throw new MalformedDerError('two subjectAltName extensions');
    found = extensionValue(fields);
  }
  return found;
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
    const generalNames = subjectAltNameOf(der);
    if (!generalNames) return [];
    return readTlvs(readOne(generalNames, TAG.sequence))
      .filter((name) => name.tag === URI_NAME)
      .map((name) => readIa5String(name.value));
  } catch {
    return [];
  }
}

/**
 * The SPIFFE ID a certificate proves, or undefined. An X.509-SVID carries
 * exactly one spiffe:// URI SAN; a certificate with none or several proves no
 * identity.
 */
export function spiffeIdOf(der: Uint8Array): string | undefined {
  const ids = uriSansOf(der).filter((uri) => uri.startsWith('spiffe://'));
  return ids.length === 1 ? ids[0] : undefined;
}

/**
 * Peer certificates repeat across connections (every connection from one
 * sidecar presents the same SVID until it rotates), so parsed identities are
 * cached by fingerprint. Bounded: a flood of distinct certificates only
 * evicts, it never grows memory.
 */
export class PeerIdentityCache {
  readonly #entries = new Map<string, string | null>();
  readonly #max: number;

  constructor(max = 4096) {
    this.#max = max;
  }

  identityOf(fingerprint256: string, der: Uint8Array): string | undefined {
    const cached = this.#entries.get(fingerprint256);
    if (cached !== undefined) return cached ?? undefined;
    const id = spiffeIdOf(der);
    if (this.#entries.size >= this.#max) {
      const oldest = this.#entries.keys().next().value as string;
      this.#entries.delete(oldest);
    }
    this.#entries.set(fingerprint256, id ?? null);
    return id;
  }
}
