import { randomBytes } from 'node:crypto';
import { type FileHandle, open, rename, unlink } from 'node:fs/promises';
import { basename, dirname, join } from 'node:path';

/**
 * Writes `content` to `path` so that, once this resolves, `path` is a regular
 * file holding exactly `content` with exactly `mode` (0600 unless told: this
 * is how private keys, bootstrap tokens and token stores are written).
 *
 * The content goes to a new temporary file in the same folder, with a random
 * name, created exclusively (`wx`, O_EXCL: an existing file or symlink at that
 * name is an error, never followed or reused), given `mode` on the open
 * handle (so the umask can neither loosen nor tighten it), synced, and then
 * renamed over `path`. rename replaces the directory entry itself: a symlink
 * at `path` is replaced, not followed, and an existing file's old mode does
 * not survive. A crash leaves the old file or the new one, never half of one.
 * On failure the temporary file is removed.
 */
export async function writeFileAtomic(
  path: string,
  content: string | Uint8Array,
  mode = 0o600,
): Promise<void> {
  const temporary = join(
    dirname(path),
    `.${basename(path)}.${randomBytes(12).toString('hex')}.tmp`,
  );
  let created = false;
  let handle: FileHandle | undefined;
  try {
    handle = await open(temporary, 'wx', mode);
    created = true;
    await handle.chmod(mode);
    await handle.writeFile(content);
    await handle.sync();
    await handle.close();
    handle = undefined;
    await rename(temporary, path);
  } catch (error) {
    await handle?.close().catch(() => {});
    // Only a file this call created is removed: with `wx`, an open that failed created nothing.
    if (created) await unlink(temporary).catch(() => {});
    throw error;
  }
}
