import { createHash, randomBytes } from 'node:crypto';
import { mkdir, readFile } from 'node:fs/promises';
import { dirname } from 'node:path';
import { ConfigError } from '../common/errors.ts';
import { writeFileAtomic } from '../common/private-file.ts';
import { formatSpiffeId, isDnsLabel, isDnsSubdomain } from '../common/spiffe.ts';

/** What a bootstrap token proves: one workload running as one SPIFFE identity. */
export interface TokenBinding {
  readonly workload: string;
  readonly namespace: string;
  readonly serviceAccount: string;
  readonly spiffeId: string;
  readonly createdAt: string;
  /** After this instant the token no longer bootstraps (renewals by SVID go on); absent: no expiry. */
  readonly expiresAt?: string;
}

type TokenFile = Record<string, TokenBinding>;

const hash = (token: string) => createHash('sha256').update(token).digest('hex');

/**
 * Bootstrap tokens, stored as sha256 hashes (the tokens are 256 random bits,
 * so a plain hash is enough: there is nothing to brute-force). The file is
 * re-read on each lookup so that `postern token create` works while the
 * control plane runs; lookups happen once per sidecar start, not per request.
 */
export class TokenStore {
  readonly #path: string;
  readonly #trustDomain: string;

  readonly #now: () => number;

  constructor(path: string, trustDomain: string, now: () => number = Date.now) {
    this.#path = path;
    this.#trustDomain = trustDomain;
    this.#now = now;
  }

  async #read(): Promise<TokenFile> {
    try {
      return JSON.parse(await readFile(this.#path, 'utf8')) as TokenFile;
    } catch (error) {
      if ((error as NodeJS.ErrnoException).code === 'ENOENT') return {};
      throw error;
    }
  }

  /** Mints a token bound to the workload's identity; returns the token (shown once, stored hashed). */
  async create(
    workload: string,
    namespace: string,
    serviceAccount: string,
    ttlMs?: number,
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
    const tokens = await this.#read();
    tokens[hash(token)] = {
      workload,
      namespace,
      serviceAccount,
      spiffeId,
      createdAt: new Date(this.#now()).toISOString(),
      ...(ttlMs ? { expiresAt: new Date(this.#now() + ttlMs).toISOString() } : {}),
    };
    await mkdir(dirname(this.#path), { recursive: true });
    await writeFileAtomic(this.#path, JSON.stringify(tokens, null, 2) + '\n');
    return token;
  }

  /** Deletes every token bound to `spiffeId`; its sidecars can then neither bootstrap nor renew. Returns how many. */
  async revoke(spiffeId: string): Promise<number> {
    const tokens = await this.#read();
    const kept = Object.fromEntries(
      Object.entries(tokens).filter(([, b]) => b.spiffeId !== spiffeId),
    );
    const removed = Object.keys(tokens).length - Object.keys(kept).length;
    if (removed) await writeFileAtomic(this.#path, JSON.stringify(kept, null, 2) + '\n');
    return removed;
  }

  /** The binding a token proves, unless it is unknown or expired. */
  async verify(token: string): Promise<TokenBinding | undefined> {
    const binding = (await this.#read())[hash(token.trim())];
    if (binding?.expiresAt && Date.parse(binding.expiresAt) <= this.#now()) return undefined;
    return binding;
  }

  /** Whether any token still binds `spiffeId`: deleting an identity's tokens revokes its renewals too. */
  async isBound(spiffeId: string): Promise<boolean> {
    return Object.values(await this.#read()).some((b) => b.spiffeId === spiffeId);
  }

  /** Whether some token binds `workload` to `spiffeId`: the check that a sidecar may register as that service. */
  async bindingFor(workload: string, spiffeId: string): Promise<TokenBinding | undefined> {
    return Object.values(await this.#read()).find(
      (b) => b.workload === workload && b.spiffeId === spiffeId,
    );
  }
}
