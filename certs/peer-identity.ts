import { x509 } from './x509.ts';

/**
 * The URI SANs of a DER certificate, read structurally. Node's
 * `X509Certificate.subjectAltName` is one escaped string that is easy to
 * misparse (a comma or "URI:" inside a name), so identity never comes from it.
 */
export function uriSansOf(der: Uint8Array): string[] {
  const cert = new x509.X509Certificate(Uint8Array.from(der));
  const san = cert.getExtension(x509.SubjectAlternativeNameExtension);
  if (!san) return [];
  return san.names.items.filter((name) => name.type === 'url').map((name) => name.value);
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
