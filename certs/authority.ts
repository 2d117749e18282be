import { randomBytes } from 'node:crypto';
import { access, mkdir, readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { CsrRejectedError, PosternError } from '../common/errors.ts';
import { writeFileAtomic } from '../common/private-file.ts';
import { SUBJECT_ALT_NAME_OID } from './der.ts';
import { uriSansOf } from './peer-identity.ts';
import {
  EC_KEY_ALGORITHM,
  EC_SIGNING_ALGORITHM,
  generateKeyPair,
  privateKeyFromPem,
  privateKeyToPem,
  x509,
} from './x509.ts';

/** The files of a CA folder (what `postern certs init` writes and the control plane loads). */
export const CA_FILES = { cert: 'ca.crt', key: 'ca.key', bundle: 'bundle.pem' } as const;

const ROOT_VALIDITY_MS = 10 * 365 * 24 * 3600 * 1000;
// Certificates are back-dated a little so that a peer whose clock runs behind
// ours does not reject a certificate issued "in the future".
export const BACKDATE_MS = 60 * 1000;

export interface LeafRequest {
  /** URI SANs: the SPIFFE ID, and nothing else for a workload SVID. */
  readonly uris: readonly string[];
  readonly dnsNames?: readonly string[];
  readonly ipAddresses?: readonly string[];
  readonly ttlMs: number;
  readonly now?: Date;
  /**
   * The certificate is valid from no earlier than this (and from the usual
   * back-dated instant when that is later): a certificate for an identity
   * revoked a moment ago must start after the revocation's cut-off.
   */
  readonly notBeforeAfter?: Date;
}

function randomSerial(): string {
  const bytes = randomBytes(16);
  bytes[0] = bytes[0]! & 0x7f; // a positive INTEGER
  return bytes.toString('hex');
}

const pemOf = (certificate: x509.X509Certificate) => certificate.toString('pem') + '\n';

/** The certificates of a PEM bundle, in order. */
function certificatesOf(bundlePem: string): x509.X509Certificate[] {
  return x509.PemConverter.decode(bundlePem).map((der) => new x509.X509Certificate(der));
}

/**
 * A root CA that signs workload certificates (X.509-SVIDs) and serving
 * certificates, with the bundle of roots peers trust: itself, and during a
 * root rotation the other root (see control-plane/root-phases.ts).
 */
export class CertificateAuthority {
  readonly certificate: x509.X509Certificate;
  readonly certPem: string;
  /** PEM: this root first, then any other root peers trust beside it. */
  readonly bundlePem: string;
  readonly trustDomain: string;
  readonly #key: CryptoKey;

  private constructor(
    certificate: x509.X509Certificate,
    key: CryptoKey,
    others: readonly x509.X509Certificate[] = [],
  ) {
    this.certificate = certificate;
    this.certPem = pemOf(certificate);
    this.bundlePem = [
      this.certPem,
      ...others.map(pemOf).filter((pem, i, all) => pem !== this.certPem && all.indexOf(pem) === i),
    ].join('');
    this.#key = key;
    const spiffe = uriSansOf(new Uint8Array(certificate.rawData)).find((u) =>
      u.startsWith('spiffe://'),
    );
    if (!spiffe) {
      throw new PosternError(
        'POSTERN_CA_INVALID',
        'the CA certificate carries no spiffe://<trust-domain> URI SAN naming its trust domain',
      );
    }
    this.trustDomain = spiffe.slice('spiffe://'.length);
  }

  /** The private key as PKCS#8 PEM, for the CA folder and the rotation record (both 0600). */
  get keyPem(): string {
    return privateKeyToPem(this.#key);
  }

  /**
   * This root, signing as before, with the roots of `bundlePem` trusted beside
   * it: what a root rotation makes of the signing root while the other root
   * is in the bundle. The result's bundle lists this root first, and once.
   */
  withBundle(bundlePem: string): CertificateAuthority {
    return new CertificateAuthority(this.certificate, this.#key, certificatesOf(bundlePem));
  }

  static async create(trustDomain: string, now = new Date()): Promise<CertificateAuthority> {
    const keys = await generateKeyPair();
    const serialNumber = randomSerial();
    const cert = await x509.X509CertificateGenerator.createSelfSigned({
      serialNumber,
      // Each root its own name: during a rotation two roots of one trust
      // domain are trusted side by side, and chain building, openssl and
      // operators tell them apart by subject.
      name: `CN=Postern root CA ${serialNumber.slice(0, 8)}, O=${trustDomain}`,
      notBefore: new Date(now.getTime() - BACKDATE_MS),
      notAfter: new Date(now.getTime() + ROOT_VALIDITY_MS),
      signingAlgorithm: EC_SIGNING_ALGORITHM,
      keys,
      extensions: [
        new x509.BasicConstraintsExtension(true, undefined, true),
        new x509.KeyUsagesExtension(
          x509.KeyUsageFlags.keyCertSign | x509.KeyUsageFlags.cRLSign,
          true,
        ),
        await x509.SubjectKeyIdentifierExtension.create(keys.publicKey),
        // SPIFFE lets a signing certificate name its trust domain this way; it
        // is how a loaded CA knows which trust domain it speaks for.
        new x509.SubjectAlternativeNameExtension([
          { type: 'url', value: `spiffe://${trustDomain}` },
        ]),
      ],
    });
    return new CertificateAuthority(cert, keys.privateKey);
  }

  static fromPem(certPem: string, keyPem: string): CertificateAuthority {
    return new CertificateAuthority(new x509.X509Certificate(certPem), privateKeyFromPem(keyPem));
  }

  /**
   * Loads a CA folder written by `postern certs init` or by the control
   * plane: the signing root, and bundle.pem's roots trusted beside it (during
   * a root rotation, the other root), so what `certs issue` hands out
   * verifies every sidecar.
   */
  static async load(dir: string): Promise<CertificateAuthority> {
    const [certPem, keyPem, bundlePem] = await Promise.all([
      readFile(join(dir, CA_FILES.cert), 'utf8'),
      readFile(join(dir, CA_FILES.key), 'utf8'),
      readFile(join(dir, CA_FILES.bundle), 'utf8').catch((error: NodeJS.ErrnoException) => {
        if (error.code === 'ENOENT') return '';
        throw error;
      }),
    ]);
    return CertificateAuthority.fromPem(certPem, keyPem).withBundle(bundlePem);
  }

  /**
   * Loads the CA in `dir`, or creates one if the folder holds neither file.
   * Half a CA (a certificate without its key, or the reverse) is an error:
   * minting a new root over it would silently break trust across the mesh.
   */
  static async loadOrCreate(dir: string, trustDomain: string): Promise<CertificateAuthority> {
    const present = await Promise.all(
      [CA_FILES.cert, CA_FILES.key].map((name) =>
        access(join(dir, name)).then(
          () => true,
          () => false,
        ),
      ),
    );
    if (present[0] && present[1]) return CertificateAuthority.load(dir);
    if (present[0] || present[1]) {
      throw new PosternError(
        'POSTERN_CA_INCOMPLETE',
        `${dir} has ${present[0] ? CA_FILES.cert : CA_FILES.key} but not ${present[0] ? CA_FILES.key : CA_FILES.cert}; restore it rather than start a new CA`,
      );
    }
    const ca = await CertificateAuthority.create(trustDomain);
    await ca.writeTo(dir);
    return ca;
  }

  /** Writes ca.crt, ca.key (mode 0600) and bundle.pem. */
  async writeTo(dir: string): Promise<void> {
    await mkdir(dir, { recursive: true });
    // A new private file renamed into place: an existing ca.key's mode, or a symlink there, does not survive.
    await writeFileAtomic(join(dir, CA_FILES.key), this.keyPem);
    await writeFileAtomic(join(dir, CA_FILES.cert), this.certPem, 0o644);
    await writeFileAtomic(join(dir, CA_FILES.bundle), this.bundlePem, 0o644);
  }

  /** Issues a leaf certificate (client and server auth) for `publicKey`; returns its PEM. */
  async issue(publicKey: CryptoKey | x509.PublicKey, request: LeafRequest): Promise<string> {
    const now = request.now ?? new Date();
    const names: x509.JsonGeneralNames = [
      ...request.uris.map((value) => ({ type: 'url' as const, value })),
      ...(request.dnsNames ?? []).map((value) => ({ type: 'dns' as const, value })),
      ...(request.ipAddresses ?? []).map((value) => ({ type: 'ip' as const, value })),
    ];
    const cert = await x509.X509CertificateGenerator.create({
      serialNumber: randomSerial(),
      subject: `O=${this.trustDomain}`,
      issuer: this.certificate.subject,
      notBefore: new Date(
        Math.max(now.getTime() - BACKDATE_MS, request.notBeforeAfter?.getTime() ?? 0),
      ),
      notAfter: new Date(now.getTime() + request.ttlMs),
      signingAlgorithm: EC_SIGNING_ALGORITHM,
      publicKey,
      signingKey: this.#key,
      extensions: [
        new x509.BasicConstraintsExtension(false, undefined, true),
        new x509.KeyUsagesExtension(
          x509.KeyUsageFlags.digitalSignature | x509.KeyUsageFlags.keyAgreement,
          true,
        ),
        new x509.ExtendedKeyUsageExtension(
          [x509.ExtendedKeyUsage.serverAuth, x509.ExtendedKeyUsage.clientAuth],
          false,
        ),
        new x509.SubjectAlternativeNameExtension(names, false),
        await x509.AuthorityKeyIdentifierExtension.create(this.certificate, false),
        await x509.SubjectKeyIdentifierExtension.create(publicKey),
      ],
    });
    return cert.toString('pem') + '\n';
  }

  /**
   * Signs a CSR for exactly `spiffeId`, the identity the caller's credential
   * proved. The CSR's signature must verify (the caller holds the key), its key
   * must be ECDSA P-256, and its only URI SAN must be that identity: a CSR
   * that asks for anything else is refused rather than silently corrected.
   */
  async signCsr(
    csrPem: string,
    spiffeId: string,
    leaf: Omit<LeafRequest, 'uris'>,
  ): Promise<string> {
    let csr: x509.Pkcs10CertificateRequest;
    try {
      csr = new x509.Pkcs10CertificateRequest(csrPem);
    } catch {
      throw new CsrRejectedError(
        'the body is not a PEM-encoded PKCS#10 certificate signing request',
      );
    }
    if (!(await csr.verify())) {
      throw new CsrRejectedError('the CSR signature does not verify against its own public key');
    }
    const keyAlgorithm = csr.publicKey.algorithm as EcKeyAlgorithm;
    if (
      keyAlgorithm.name !== EC_KEY_ALGORITHM.name ||
      keyAlgorithm.namedCurve !== EC_KEY_ALGORITHM.namedCurve
    ) {
      throw new CsrRejectedError('the CSR key must be ECDSA P-256');
    }
    const requested = uriSansOfCsr(csr);
    if (requested.length !== 1 || requested[0] !== spiffeId) {
      throw new CsrRejectedError(
        `the CSR asks for ${requested.length ? requested.join(', ') : 'no URI SAN'} but the credential proves ${spiffeId}`,
      );
    }
    return this.issue(csr.publicKey, { ...leaf, uris: [spiffeId] });
  }
}

function uriSansOfCsr(csr: x509.Pkcs10CertificateRequest): string[] {
  const raw = csr.getExtension(SUBJECT_ALT_NAME_OID);
  if (!raw) return [];
  const san = new x509.SubjectAlternativeNameExtension(raw.rawData);
  return san.names.items.filter((name) => name.type === 'url').map((name) => name.value);
}
