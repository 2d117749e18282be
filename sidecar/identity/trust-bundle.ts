import { X509Certificate } from 'node:crypto';
import { type Snapshot, trustBundleId } from '../../common/wire.ts';

const PEM_CERTIFICATE = /-----BEGIN CERTIFICATE-----[A-Za-z0-9+/=\s]+-----END CERTIFICATE-----/g;

/** One root of a trust bundle, as the admin /config shows it. */
export interface BundleRoot {
  readonly subject: string;
  readonly fingerprint: string;
  readonly notAfter: string;
}

export type BundleReading =
  | { readonly ok: true; readonly roots: readonly BundleRoot[] }
  | { readonly ok: false; readonly reason: string };

/**
 * The roots of a PEM trust bundle, each a CA certificate, or why it is not
 * one. A bundle the TLS stack could not use must not replace a good one:
 * every handshake would then fail.
 */
export function readTrustBundle(bundlePem: string): BundleReading {
  const blocks = bundlePem.match(PEM_CERTIFICATE) ?? [];
  if (!blocks.length) return { ok: false, reason: 'the trust bundle holds no PEM certificate' };
  const roots: BundleRoot[] = [];
  for (const [i, block] of blocks.entries()) {
    let certificate: X509Certificate;
    try {
      certificate = new X509Certificate(block);
    } catch (error) {
      return {
        ok: false,
        reason: `trust bundle certificate ${i + 1} does not parse: ${(error as Error).message}`,
      };
    }
    if (!certificate.ca)
      return { ok: false, reason: `trust bundle certificate ${i + 1} is not a CA certificate` };
    roots.push({
      subject: certificate.subject.replaceAll('\n', ', '),
      fingerprint: certificate.fingerprint256,
      notAfter: new Date(certificate.validTo).toISOString(),
    });
  }
  return { ok: true, roots };
}

/** What the admin /config shows of a bundle: its id (as acks name it) and its roots. */
export function describeTrustBundle(bundlePem: string) {
  const reading = readTrustBundle(bundlePem);
  return {
    id: trustBundleId(bundlePem),
    ...(reading.ok ? { roots: reading.roots } : { problem: reading.reason }),
  };
}

/**
 * The trust bundle a snapshot carries, checked: `pem` undefined when it
 * carries none (a control plane from before root rotation).
 */
export function snapshotTrustBundle(
  candidate: unknown,
):
  | { readonly ok: true; readonly pem: string | undefined }
  | { readonly ok: false; readonly reason: string } {
  const pem = (candidate as Partial<Snapshot> | null)?.trustBundle;
  if (pem === undefined) return { ok: true, pem };
  if (typeof pem !== 'string') return { ok: false, reason: 'trustBundle must be PEM text' };
  const reading = readTrustBundle(pem);
  return reading.ok ? { ok: true, pem } : reading;
}
