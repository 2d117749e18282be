import { open, stat, unlink } from 'node:fs/promises';
import { setTimeout as sleep } from 'node:timers/promises';

/**
 * Runs `fn` holding `<path>.lock`, a file created exclusively (O_EXCL), so
 * that read-modify-write updates of `path` by different processes (two
 * `postern token` commands at once) do not lose each other's changes. A lock
 * older than `staleMs` is taken to be left by a process that died holding it.
 * (Two waiters that find the same stale lock at once could both take it: a
 * window only a crash opens, for commands an operator runs by hand.)
 */
export async function withFileLock<T>(
  path: string,
  fn: () => Promise<T>,
  options: { timeoutMs?: number; staleMs?: number } = {},
): Promise<T> {
  const lock = `${path}.lock`;
  const staleMs = options.staleMs ?? 30_000;
  // Longer than a lock can live: a holder that died delays us, never fails us.
  const deadline = Date.now() + (options.timeoutMs ?? staleMs + 10_000);
  for (;;) {
    try {
      await (await open(lock, 'wx', 0o600)).close();
      break;
    } catch (error) {
      if ((error as NodeJS.ErrnoException).code !== 'EEXIST') throw error;
      const age = await stat(lock).then(
        (s) => Date.now() - s.mtimeMs,
        () => 0,
      );
      if (age > staleMs) await unlink(lock).catch(() => {});
      else if (Date.now() > deadline)
        throw new Error(`${lock} is held by another process (remove it if none is running)`);
      else await sleep(20);
    }
  }
  try {
    return await fn();
  } finally {
    await unlink(lock).catch(() => {});
  }
}
