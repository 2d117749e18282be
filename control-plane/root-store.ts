import { readFile, rm } from 'node:fs/promises';
import { join } from 'node:path';
import { CertificateAuthority } from '../certs/authority.ts';
import { ConfigError } from '../common/errors.ts';
import { writeFileAtomic } from '../common/private-file.ts';
import { type Roots, trustedPems } from './root-phases.ts';

/** The rotation record in the CA folder, present while a rotation is under way. */
export const ROTATION_FILE = 'rotation.json';

interface KeyedRoot {
  readonly cert: string;
  readonly key: string;
}

/**
 * rotation.json: the whole state of a rotation in one file, roots and keys
 * included (so 0600, like ca.key). One atomic write moves the rotation from
 * one phase to the next; ca.crt, ca.key and bundle.pem are then rewritten
 * from it, and rewritten again at start, so a crash between the two leaves
 * nothing inconsistent behind.
 */
type RotationRecord =
  | {
      readonly phase: 'prepared';
      readonly signing: KeyedRoot;
      readonly next: KeyedRoot;
      readonly startedAt: string;
      readonly propagationMs: number;
    }
  | {
      readonly phase: 'active';
      readonly signing: KeyedRoot;
      readonly retiring: string;
      readonly startedAt: string;
      readonly activatedAt: string;
      readonly retireAt: string;
    };

const keyed = (ca: CertificateAuthority): KeyedRoot => ({ cert: ca.certPem, key: ca.keyPem });
const iso = (ms: number) => new Date(ms).toISOString();

function recordOf(roots: Roots<CertificateAuthority>): RotationRecord | undefined {
  switch (roots.phase) {
    case 'steady':
      return undefined;
    case 'prepared':
      return {
        phase: 'prepared',
        signing: keyed(roots.signing),
        next: keyed(roots.next),
        startedAt: iso(roots.startedAtMs),
        propagationMs: roots.propagationMs,
      };
    case 'active':
      return {
        phase: 'active',
        signing: keyed(roots.signing),
        retiring: roots.retiring,
        startedAt: iso(roots.startedAtMs),
        activatedAt: iso(roots.activatedAtMs),
        retireAt: iso(roots.retireAtMs),
      };
  }
}

/** Reads a rotation record back; anything malformed is an error naming the file and the field. */
function rootsOf(path: string, record: RotationRecord): Roots<CertificateAuthority> {
  const fail = (what: string): never => {
    throw new ConfigError(
      `${path}: ${what}; restore the file from a backup (or remove it to drop the rotation and keep ca.crt and ca.key)`,
    );
  };
  const root = (field: string, value: Partial<KeyedRoot> | undefined) => {
    if (typeof value?.cert !== 'string' || typeof value.key !== 'string')
      return fail(`${field} needs "cert" and "key" (PEM)`);
    try {
      return CertificateAuthority.fromPem(value.cert, value.key);
    } catch (error) {
      return fail(`${field} is not a root CA with its key: ${(error as Error).message}`);
    }
  };
  const time = (field: string, value: unknown) => {
    const ms = typeof value === 'string' ? Date.parse(value) : Number.NaN;
    return Number.isFinite(ms) ? ms : fail(`${field} must be an RFC 3339 time`);
  };
  const signing = root('signing', record.signing);
  const startedAtMs = time('startedAt', record.startedAt);
  if (record.phase === 'prepared') {
    if (!Number.isSafeInteger(record.propagationMs) || record.propagationMs < 0)
      fail('propagationMs must be a whole number of milliseconds');
    return {
      phase: 'prepared',
      signing,
      next: root('next', record.next),
      startedAtMs,
      propagationMs: record.propagationMs,
    };
  }
  if (record.phase === 'active') {
    if (typeof record.retiring !== 'string') fail('retiring must be the old root (PEM)');
    return {
      phase: 'active',
      signing,
      retiring: record.retiring,
      startedAtMs,
      activatedAtMs: time('activatedAt', record.activatedAt),
      retireAtMs: time('retireAt', record.retireAt),
    };
  }
  return fail(`phase must be "prepared" or "active"`);
}

/**
 * The roots of the CA folder `dir`: the rotation record when there is one,
 * otherwise ca.crt and ca.key (created for `trustDomain` when the folder
 * holds neither).
 */
export async function loadRoots(
  dir: string,
  trustDomain: string,
): Promise<Roots<CertificateAuthority>> {
  const path = join(dir, ROTATION_FILE);
  let text: string;
  try {
    text = await readFile(path, 'utf8');
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code !== 'ENOENT') throw error;
    return { phase: 'steady', signing: await CertificateAuthority.loadOrCreate(dir, trustDomain) };
  }
  let record: RotationRecord;
  try {
    record = JSON.parse(text) as RotationRecord;
  } catch (error) {
    throw new ConfigError(`${path} is not valid JSON: ${(error as Error).message}`);
  }
  return rootsOf(path, record);
}

/** The signing root of `roots`, with the bundle peers trust in that phase. */
export function signingWithBundle(roots: Roots<CertificateAuthority>): CertificateAuthority {
  return roots.signing.withBundle(trustedPems(roots).join(''));
}

/**
 * Writes `roots` to the CA folder. During a rotation the record goes first
 * and the files tools read (ca.crt, ca.key, bundle.pem: the layout `certs
 * init` writes, which `certs issue --ca` and `--ca-file` use) follow from
 * it; at the end of one those files go first and the record is removed last,
 * so a crash in between finds the rotation still there and finishes it.
 */
export async function saveRoots(dir: string, roots: Roots<CertificateAuthority>): Promise<void> {
  const record = recordOf(roots);
  if (record)
    await writeFileAtomic(join(dir, ROTATION_FILE), `${JSON.stringify(record, null, 2)}\n`);
  await signingWithBundle(roots).writeTo(dir);
  if (!record) await rm(join(dir, ROTATION_FILE), { force: true });
}
