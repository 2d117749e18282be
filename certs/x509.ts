// @peculiar/x509 v2 needs reflect-metadata loaded before it, and a WebCrypto
// provider; every module that touches certificates imports x509 from here so
// that this happens exactly once.
import 'reflect-metadata';
import { createPrivateKey, KeyObject } from 'node:crypto';
import * as x509 from '@peculiar/x509';

x509.cryptoProvider.set(globalThis.crypto);

export { x509 };

/** ECDSA P-256 with SHA-256: the key and signature algorithm for every certificate we make. */
export const EC_KEY_ALGORITHM = { name: 'ECDSA', namedCurve: 'P-256' } as const;
export const EC_SIGNING_ALGORITHM = { name: 'ECDSA', hash: 'SHA-256' } as const;

export async function generateKeyPair(): Promise<CryptoKeyPair> {
  return globalThis.crypto.subtle.generateKey(EC_KEY_ALGORITHM, true, ['sign', 'verify']);
}

/** PKCS#8 PEM, the form Node's tls module takes for `key` (Node's own encoder, no hand-made PEM). */
export function privateKeyToPem(key: CryptoKey): string {
  return KeyObject.from(key).export({ type: 'pkcs8', format: 'pem' }) as string;
}

export function privateKeyFromPem(pem: string): CryptoKey {
  return createPrivateKey(pem).toCryptoKey(EC_KEY_ALGORITHM, true, ['sign']) as CryptoKey;
}
