/**
 * Certificates outside the mesh CA, made with the openssl CLI as an
 * operator would: a gateway's server certificate for clients outside the
 * mesh, and partners' CA and client certificates (a subject CN to match).
 */
import { execFile } from 'node:child_process';
import { writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { promisify } from 'node:util';

const run = promisify(execFile);
/** `openssl req` with a new ECDSA P-256 key, unencrypted. */
const NEW_P256_KEY = ['req', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:P-256', '-nodes'];

export interface CertFiles {
  readonly cert: string;
  readonly key: string;
}

/** A self-signed CA: `dir/<name>.crt` and `.key`. */
export async function opensslCa(dir: string, name: string): Promise<CertFiles> {
  const files = { cert: join(dir, `${name}.crt`), key: join(dir, `${name}.key`) };
  await run('openssl', [
    ...NEW_P256_KEY,
    '-x509',
    ...['-keyout', files.key, '-out', files.cert, '-days', '2', '-subj', `/CN=${name}`],
    ...['-addext', 'basicConstraints=critical,CA:TRUE'],
    ...['-addext', 'keyUsage=critical,keyCertSign,cRLSign'],
  ]);
  return files;
}

/** A leaf signed by `ca` with subject CN `commonName`, for a server (DNS and IP SANs) or a client. */
export async function opensslLeaf(
  dir: string,
  ca: CertFiles,
  commonName: string,
  usage: { server?: { dns: readonly string[]; ips?: readonly string[] }; client?: boolean },
): Promise<CertFiles> {
  const base = join(
    dir,
    `${commonName.replace(/[^a-z0-9.-]/gi, '_')}-${Math.random().toString(36).slice(2, 8)}`,
  );
  const files = { cert: `${base}.crt`, key: `${base}.key` };
  const csr = `${base}.csr`;
  const ext = `${base}.ext`;
  const sans = [
    ...(usage.server?.dns ?? []).map((d) => `DNS:${d}`),
    ...(usage.server?.ips ?? []).map((ip) => `IP:${ip}`),
  ];
  await writeFile(
    ext,
    [
      'basicConstraints=CA:FALSE',
      `extendedKeyUsage=${usage.server ? 'serverAuth' : 'clientAuth'}`,
      ...(sans.length ? [`subjectAltName=${sans.join(',')}`] : []),
    ].join('\n'),
  );
  await run('openssl', [
    ...NEW_P256_KEY,
    ...['-keyout', files.key, '-out', csr, '-subj', `/CN=${commonName}`],
  ]);
  await run('openssl', [
    'x509',
    '-req',
    '-in',
    csr,
    '-CA',
    ca.cert,
    '-CAkey',
    ca.key,
    '-CAcreateserial',
    '-out',
    files.cert,
    '-days',
    '1',
    '-extfile',
    ext,
  ]);
  return files;
}
