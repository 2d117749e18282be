/** The sidecar's current X.509-SVID: certificate chain, its private key (memory only) and the roots to trust. */
export interface Svid {
  readonly spiffeId: string;
  readonly certPem: string;
  readonly keyPem: string;
  readonly bundlePem: string;
  readonly notBeforeMs: number;
  readonly notAfterMs: number;
}

/** The TLS options every listener and connector built from an SVID shares. */
export function tlsOptionsOf(svid: Svid): { cert: string; key: string; ca: string } {
  return { cert: svid.certPem, key: svid.keyPem, ca: svid.bundlePem };
}
