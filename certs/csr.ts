/**
 * The sidecar's certificate signing request (PKCS#10, RFC 2986), written
 * with node:crypto and certs/der.ts so the sidecar does not load the CA's
 * certificate library (issue 7). The CA (certs/authority.ts) checks what
 * matters: the signature, the P-256 key, and the one URI SAN.
 */
import { generateKeyPair, type KeyObject, sign } from 'node:crypto';
import { promisify } from 'node:util';
import { parseSpiffeId } from '../common/spiffe.ts';
import { contextTag, encodeOid, SUBJECT_ALT_NAME_OID, TAG, tlv } from './der.ts';

const EXTENSION_REQUEST_OID = '1.2.840.113549.1.9.14'; // PKCS #9 extensionRequest
const ECDSA_WITH_SHA256_OID = '1.2.840.10045.4.3.2';
const URI_NAME = contextTag(6, false);

const newKeyPair = promisify(generateKeyPair);

/** PEM as RFC 7468 has it: base64 in lines of 64 characters. */
function pem(label: string, der: Uint8Array): string {
  const base64 = Buffer.from(der)
    .toString('base64')
    .replace(/.{64}(?=.)/g, '$&\n');
  return `-----BEGIN ${label}-----\n${base64}\n-----END ${label}-----\n`;
}

/** CertificationRequestInfo: no subject (the SPIFFE ID is the identity), the key, and an extensionRequest for the SAN. */
function requestInfo(publicKey: KeyObject, spiffeId: string): Uint8Array {
  const subjectAltName = tlv(
    TAG.sequence,
    tlv(TAG.oid, encodeOid(SUBJECT_ALT_NAME_OID)),
    tlv(TAG.octetString, tlv(TAG.sequence, tlv(URI_NAME, Buffer.from(spiffeId, 'ascii')))),
  );
  const extensionRequest = tlv(
    TAG.sequence,
    tlv(TAG.oid, encodeOid(EXTENSION_REQUEST_OID)),
    tlv(TAG.set, tlv(TAG.sequence, subjectAltName)),
  );
  return tlv(
    TAG.sequence,
    tlv(TAG.integer, Uint8Array.of(0)), // version 1
    tlv(TAG.sequence),
    publicKey.export({ type: 'spki', format: 'der' }),
    tlv(contextTag(0, true), extensionRequest),
  );
}

/**
 * A new ECDSA P-256 key pair, kept in memory, and a CSR asking for
 * `spiffeId`: what a sidecar sends the control plane.
 */
export async function createCsr(spiffeId: string): Promise<{ keyPem: string; csrPem: string }> {
  // A URI SAN is an IA5String, ASCII only; a valid SPIFFE ID is.
  parseSpiffeId(spiffeId);
  const { publicKey, privateKey } = await newKeyPair('ec', { namedCurve: 'P-256' });
  const info = requestInfo(publicKey, spiffeId);
  const signature = sign('sha256', info, { key: privateKey, dsaEncoding: 'der' });
  const csr = tlv(
    TAG.sequence,
    info,
    tlv(TAG.sequence, tlv(TAG.oid, encodeOid(ECDSA_WITH_SHA256_OID))),
    tlv(TAG.bitString, Uint8Array.of(0), signature), // no unused bits
  );
  return {
    keyPem: privateKey.export({ type: 'pkcs8', format: 'pem' }) as string,
    csrPem: pem('CERTIFICATE REQUEST', csr),
  };
}
