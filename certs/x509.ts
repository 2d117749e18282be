// @peculiar/x509 v2 needs reflect-metadata loaded before it, and a WebCrypto
// provider; every module that touches certificates imports x509 from here so
// that this happens exactly once.
import 'reflect-metadata';
import * as x509 from '@peculiar/x509';

x509.cryptoProvider.set(globalThis.crypto);

export { x509 };

/** ECDSA P-256 with SHA-256: the key and signature algorithm for every certificate we make. */
export const EC_KEY_ALGORITHM = { name: 'ECDSA', namedCurve: 'P-256' } as const;
export const EC_SIGNING_ALGORITHM = { name: 'ECDSA', hash: 'SHA-256' } as const;

export async function generateKeyPair(): Promise<CryptoKeyPair> {
  return globalThis.crypto.subtle.generateKey(EC_KEY_ALGORITHM, true, ['sign', 'verify']);
}

/** PKCS#8 PEM, the form Node's tls module takes for `key`. */
export async function privateKeyToPem(key: CryptoKey): Promise<string> {
  const der = Buffer.from(await globalThis.crypto.subtle.exportKey('pkcs8', key));
  const body = der.toString('base64').replace(/(.{64})/g, '$1\n');
  return `-----BEGIN PRIVATE KEY-----\n${body}${body.endsWith('\n') ? '' : '\n'}-----END PRIVATE KEY-----\n`;
}

export async function privateKeyFromPem(pem: string): Promise<CryptoKey> {
  const base64 = pem.replace(/-----(BEGIN|END) PRIVATE KEY-----/g, '').replace(/\s+/g, '');
  return globalThis.crypto.subtle.importKey(
    'pkcs8',
    Buffer.from(base64, 'base64'),
    EC_KEY_ALGORITHM,
    true,
    ['sign'],
  );
}

/** Splits a PEM bundle into its certificates, in order. */
export function splitPemCertificates(pem: string): string[] {
  return pem.match(/-----BEGIN CERTIFICATE-----[\s\S]+?-----END CERTIFICATE-----/g) ?? [];
}
