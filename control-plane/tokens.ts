import { createHash, randomBytes } from 'node:crypto';
import { type FSWatcher, watch } from 'node:fs';
import { mkdir, readFile, stat } from 'node:fs/promises';
import { basename, dirname, join } from 'node:path';
import { ConfigError } from '../common/errors.ts';
import { withFileLock } from '../common/file-lock.ts';
import { writeFileAtomic } from '../common/private-file.ts';
import { formatSpiffeId, isDnsLabel, isDnsSubdomain } from '../common/spiffe.ts';

/** What a bootstrap token proves: one workload running as one SPIFFE identity, with its labels. */
export interface TokenBinding {
  readonly workload: string;
  readonly namespace: string;
  readonly serviceAccount: string;
  readonly spiffeId: string;
  readonly createdAt: string;
  /** After this instant the token no longer bootstraps (renewals by SVID go on); absent: no expiry. */
  readonly expiresAt?: string;
  /**
   * The workload's labels, which decide the RoutePolicies it receives. They
   * come from the credential, never from the sidecar's word; absent (tokens
   * minted before labels were bound): `app=<workload>`.
   */
  readonly labels?: Readonly<Record<string, string>>;
}

type TokenFile = Record<string, TokenBinding>;

const hash = (token: string) => createHash('sha256').update(token).digest('hex');

/** The labels a binding grants its workload. */
export function labelsOf(binding: TokenBinding): Readonly<Record<string, string>> {
  return binding.labels ?? { app: binding.workload };
}

/** Identifies one version of a file: writes replace it (new inode), so this changes with every write. */
interface FileVersion {
  readonly ino: number;
  readonly mtimeMs: number;
  readonly size: number;
}

const sameVersion = (a: FileVersion | undefined, b: FileVersion | undefined) =>
  a === b || (!!a && !!b && a.ino === b.ino && a.mtimeMs === b.mtimeMs && a.size === b.size);

async function versionOf(path: string): Promise<FileVersion | undefined> {
  try {
    const s = await stat(path);
    return { ino: s.ino, mtimeMs: s.mtimeMs, size: s.size };
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
    throw error;
  }
}

async function readJson<T>(path: string, empty: T): Promise<T> {
  let text: string;
  try {
    text = await readFile(path, 'utf8');
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === 'ENOENT') return empty;
    throw error;
  }
  try {
    return JSON.parse(text) as T;
  } catch (error) {
    throw new ConfigError(`${path} is not valid JSON: ${(error as Error).message}`);
  }
}

/**
 * revocations.json as epoch ms per identity. Operators edit the file by hand
 * (to lift a revocation), so an entry that is not an RFC 3339 time is an
 * error naming the file and the identity; the last good index stays.
 */
function revocationTimes(path: string, file: RevocationFile): Map<string, number> {
  const times = new Map<string, number>();
  for (const [spiffeId, at] of Object.entries(file)) {
    const ms = typeof at === 'string' ? Date.parse(at) : Number.NaN;
    if (!Number.isFinite(ms)) {
      throw new ConfigError(
        `${path}: the revocation of ${spiffeId} is ${JSON.stringify(at)}; expected an RFC 3339 time such as 2026-11-25T10:00:00Z`,
      );
    }
    times.set(spiffeId, ms);
  }
  return times;
}

/** How far past the deletion of its tokens a revocation is stamped (see `revoke`). */
const REVOCATION_MARGIN_MS = 2_000;

/** revocations.json: when each identity was last revoked (SPIFFE ID → RFC 3339). */
type RevocationFile = Record<string, string>;

/**
 * Bootstrap tokens, stored as sha256 hashes (the tokens are 256 random bits,
 * so a plain hash is enough: there is nothing to brute-force). `postern token
 * create` and `token revoke` write the file from another process while the
 * control plane runs, so lookups answer from memory and re-read the file only
 * when a stat says it changed: an unauthenticated flood of certificate
 * requests costs a stat each, never a read and parse. `watch()` reports
 * changes as they happen, so that revocation takes effect at once.
 */
export class TokenStore {
  readonly #path: string;
  readonly #revocationsPath: string;
  readonly #trustDomain: string;
  readonly #now: () => number;
  #version: FileVersion | undefined;
  #revocationsVersion: FileVersion | undefined;
  #byHash = new Map<string, TokenBinding>();
  #revokedAt = new Map<string, number>();
  #bySpiffeId = new Map<string, TokenBinding[]>();
  #next: Promise<void> | undefined;
  #last: Promise<void> | undefined;
  #watcher: FSWatcher | undefined;

  constructor(path: string, trustDomain: string, now: () => number = Date.now) {
    this.#path = path;
    // Beside the tokens: STATE/revocations.json (see state.ts).
    this.#revocationsPath = join(dirname(path), 'revocations.json');
    this.#trustDomain = trustDomain;
    this.#now = now;
  }

  /**
   * Brings the in-memory index up to date with the file, reading it only if
   * it changed. Reloads run one at a time; callers that arrive while one
   * waits to start share it (it starts after they asked, so it sees what
   * they would), and a flood costs one stat per reload, not per caller.
   */
  #fresh(): Promise<void> {
    if (!this.#next) {
      const next: Promise<void> = (this.#last ?? Promise.resolve())
        .catch(() => {})
        .then(() => {
          if (this.#next === next) this.#next = undefined;
          return this.#reload();
        });
      this.#next = next;
      this.#last = next;
    }
    return this.#next;
  }

  async #reload(): Promise<void> {
    const [version, revocationsVersion] = await Promise.all([
      versionOf(this.#path),
      versionOf(this.#revocationsPath),
    ]);
    if (!sameVersion(version, this.#version)) {
      const file = version ? await readJson<TokenFile>(this.#path, {}) : {};
      const byHash = new Map(Object.entries(file));
      const bySpiffeId = new Map<string, TokenBinding[]>();
      for (const binding of byHash.values()) {
        const list = bySpiffeId.get(binding.spiffeId) ?? [];
        list.push(binding);
        bySpiffeId.set(binding.spiffeId, list);
      }
      this.#byHash = byHash;
      this.#bySpiffeId = bySpiffeId;
      this.#version = version;
    }
    if (!sameVersion(revocationsVersion, this.#revocationsVersion)) {
      const file = revocationsVersion
        ? await readJson<RevocationFile>(this.#revocationsPath, {})
        : {};
      this.#revokedAt = revocationTimes(this.#revocationsPath, file);
      this.#revocationsVersion = revocationsVersion;
    }
  }

  /**
   * Calls `onChange` after each change of the token file (a token minted or
   * revoked by another process), once the index holds the new content.
   */
  watch(onChange: () => void, onError: (error: unknown) => void): void {
    if (this.#watcher) throw new Error('already watching');
    const names = new Set([basename(this.#path), basename(this.#revocationsPath)]);
    // The folder, not the files: writes replace a file (rename), which ends a watch on it.
    this.#watcher = watch(dirname(this.#path), (_event, changed) => {
      if (changed !== null && !names.has(changed)) return;
      this.#fresh().then(onChange).catch(onError);
    });
    this.#watcher.on('error', onError);
  }

  close(): void {
    this.#watcher?.close();
  }

  /** Mints a token bound to the workload's identity; returns the token (shown once, stored hashed). */
  async create(
    workload: string,
    namespace: string,
    serviceAccount: string,
    ttlMs?: number,
    labels?: Readonly<Record<string, string>>,
  ): Promise<string> {
    const checks = [
      ['workload', workload, isDnsLabel(workload), 'a DNS label (a-z, 0-9, -)'],
      ['namespace', namespace, isDnsLabel(namespace), 'a DNS label (a-z, 0-9, -)'],
      [
        'service account',
        serviceAccount,
        isDnsSubdomain(serviceAccount),
        'a DNS subdomain (a-z, 0-9, -, .)',
      ],
    ] as const;
    for (const [what, value, ok, expected] of checks) {
      if (!ok) throw new ConfigError(`the ${what} ${JSON.stringify(value)} is not ${expected}`);
    }
    const token = `pst_${randomBytes(32).toString('base64url')}`;
    const spiffeId = formatSpiffeId({ trustDomain: this.#trustDomain, namespace, serviceAccount });
    const binding: TokenBinding = {
      workload,
      namespace,
      serviceAccount,
      spiffeId,
      createdAt: new Date(this.#now()).toISOString(),
      ...(ttlMs ? { expiresAt: new Date(this.#now() + ttlMs).toISOString() } : {}),
      labels: { ...(labels ?? { app: workload }) },
    };
    await mkdir(dirname(this.#path), { recursive: true });
    await this.#updateTokens((tokens) => {
      tokens[hash(token)] = binding;
    });
    return token;
  }

  /** Deletes one token (minted, but never handed to anyone). */
  async forget(token: string): Promise<void> {
    await this.#updateTokens((tokens) => {
      delete tokens[hash(token.trim())];
    });
  }

  /**
   * A read-modify-write of tokens.json under its lock, from the file, not the
   * cache: another process may have written since.
   */
  #updateTokens(change: (tokens: TokenFile) => void): Promise<void> {
    return withFileLock(this.#path, async () => {
      const tokens = await readJson<TokenFile>(this.#path, {});
      change(tokens);
      await writeFileAtomic(this.#path, JSON.stringify(tokens, null, 2) + '\n');
    });
  }

  /**
   * Deletes every token bound to `spiffeId` and records the revocation: its
   * sidecars can then neither bootstrap nor renew, and peers refuse the
   * certificates it already holds. Returns how many tokens were deleted.
   *
   * The tokens go first and the revocation is stamped after, a little in the
   * future: every certificate the control plane signed while a token or a
   * renewal could still pass (including one it was signing as the file
   * changed) was issued before the stamp, so none escapes. A certificate
   * issued in the margin after it, to an identity bound again at once, is
   * refused too and renews with its token.
   */
  async revoke(spiffeId: string): Promise<number> {
    let removed = 0;
    await this.#updateTokens((tokens) => {
      for (const [key, binding] of Object.entries(tokens)) {
        if (binding.spiffeId !== spiffeId) continue;
        delete tokens[key];
        removed++;
      }
    });
    await withFileLock(this.#revocationsPath, async () => {
      const revocations = await readJson<RevocationFile>(this.#revocationsPath, {});
      revocations[spiffeId] = new Date(this.#now() + REVOCATION_MARGIN_MS).toISOString();
      await writeFileAtomic(this.#revocationsPath, JSON.stringify(revocations, null, 2) + '\n');
    });
    return removed;
  }

  /** Loads the files now (a later lookup re-reads only what changed). */
  async refresh(): Promise<void> {
    await this.#fresh();
  }

  /** When each revoked identity was revoked (epoch ms), as last loaded. */
  revocationsNow(): ReadonlyMap<string, number> {
    return this.#revokedAt;
  }

  /** The binding a token proves, unless it is unknown or expired. */
  async verify(token: string): Promise<TokenBinding | undefined> {
    await this.#fresh();
    const binding = this.#byHash.get(hash(token.trim()));
    if (binding?.expiresAt && Date.parse(binding.expiresAt) <= this.#now()) return undefined;
    return binding;
  }

  /** Whether any token still binds `spiffeId`: deleting an identity's tokens revokes its renewals too. */
  async isBound(spiffeId: string): Promise<boolean> {
    await this.#fresh();
    return this.#bySpiffeId.has(spiffeId);
  }

  /**
   * The binding under which `workload` runs as `spiffeId`, if one still
   * exists; the newest one when several were minted (minting a token with
   * new labels relabels the workload).
   */
  async bindingFor(workload: string, spiffeId: string): Promise<TokenBinding | undefined> {
    await this.#fresh();
    return this.bindingNow(workload, spiffeId);
  }

  /** `bindingFor` from the index as last loaded (after a `watch` callback, that is the file's content). */
  bindingNow(workload: string, spiffeId: string): TokenBinding | undefined {
    let newest: TokenBinding | undefined;
    for (const binding of this.#bySpiffeId.get(spiffeId) ?? []) {
      if (binding.workload === workload && (!newest || binding.createdAt >= newest.createdAt))
        newest = binding;
    }
    return newest;
  }
}
