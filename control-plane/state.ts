import { randomUUID } from 'node:crypto';
import { mkdir, readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { writeFileAtomic } from '../common/private-file.ts';

/**
 * The control plane's state folder:
 *   ca/           the mesh CA (the layout `postern certs init` writes): ca.crt and
 *                 ca.key the root that signs, bundle.pem the roots peers trust;
 *                 during a root rotation rotation.json records its phase and both
 *                 roots, and the other files follow from it (root-store.ts)
 *   tokens.json   bootstrap tokens, hashed, each bound to one workload identity
 *   revocations.json   when each revoked identity was revoked (peers refuse its older certificates)
 *   epoch         how many times the control plane has started (snapshot versions' epoch)
 *   kubernetes-last-valid.json   in cluster mode, each RoutePolicy's last valid version
 *   blocks.json   callers blocked after exfiltration alerts, until an operator clears them
 *   mesh-id       a random name for this mesh, made once: replicas sharing the state share
 *                 it, and it keys their shared detection log in Redis
 */
export const statePaths = (dir: string) => ({
  ca: join(dir, 'ca'),
  tokens: join(dir, 'tokens.json'),
  blocks: join(dir, 'blocks.json'),
  meshId: join(dir, 'mesh-id'),
  epoch: join(dir, 'epoch'),
  kubernetesLastValid: join(dir, 'kubernetes-last-valid.json'),
});

/** Increments and returns the start counter, so versions issued after a restart sort after those before it. */
export async function nextEpoch(stateDir: string): Promise<number> {
  await mkdir(stateDir, { recursive: true });
  const path = statePaths(stateDir).epoch;
  let previous = 0;
  try {
    previous = Number.parseInt(await readFile(path, 'utf8'), 10) || 0;
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code !== 'ENOENT') throw error;
  }
  await writeFileAtomic(path, `${previous + 1}\n`, 0o644);
  return previous + 1;
}

/** This mesh's id (see above), made on first use. */
export async function meshId(stateDir: string): Promise<string> {
  const path = statePaths(stateDir).meshId;
  try {
    const kept = (await readFile(path, 'utf8')).trim();
    if (kept) return kept;
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code !== 'ENOENT') throw error;
  }
  const made = randomUUID();
  await mkdir(stateDir, { recursive: true });
  await writeFileAtomic(path, `${made}\n`, 0o644);
  return made;
}
