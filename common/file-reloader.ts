import { type FSWatcher, watch } from 'node:fs';
import { stat } from 'node:fs/promises';
import { basename, dirname } from 'node:path';
import type { Logger } from './log.ts';

/**
 * Something loaded from files and loaded again when they change (the
 * gateway's server certificate, its API-key consumers). The folders are
 * watched, not the files: editors and `kubectl` replace a file by rename,
 * and a Secret mounted in a pod changes by swapping a symlink, both of
 * which end a watch on the file itself. A load that fails keeps the last
 * good value in force, logged; only the first load's failure is thrown.
 */
export class FileReloader<T> {
  readonly #paths: readonly string[];
  readonly #load: () => Promise<T>;
  readonly #apply: (value: T) => void;
  readonly #logger: Logger;
  readonly #what: string;
  #watchers: FSWatcher[] = [];
  #timer: NodeJS.Timeout | undefined;
  #reloading: Promise<void> = Promise.resolve();

  constructor(options: {
    /** Files, or folders (a mounted Secret), whose change means a reload. */
    paths: readonly string[];
    load: () => Promise<T>;
    apply: (value: T) => void;
    logger: Logger;
    /** What is reloaded, for the log ("server certificate"). */
    what: string;
  }) {
    this.#paths = options.paths;
    this.#load = options.load;
    this.#apply = options.apply;
    this.#logger = options.logger;
    this.#what = options.what;
  }

  /** The first load (thrown on failure), then watching. */
  async start(): Promise<T> {
    const value = await this.#load();
    // Per folder, the names in it that matter; undefined: any (a watched folder's own content).
    const folders = new Map<string, Set<string> | undefined>();
    for (const path of this.#paths) {
      if ((await stat(path)).isDirectory()) folders.set(path, undefined);
      const parent = dirname(path);
      if (folders.has(parent) && folders.get(parent) === undefined) continue;
      folders.set(parent, (folders.get(parent) ?? new Set()).add(basename(path)));
    }
    for (const [folder, names] of folders) {
      const watcher = watch(folder, (_event, name) => {
        // A mounted Secret or ConfigMap changes by the kubelet swapping its `..data` symlink
        // (and `..<timestamp>` folders): the file's own name is never in the event.
        if (!names || name === null || names.has(name) || name.startsWith('..')) this.#schedule();
      });
      watcher.on('error', (error) =>
        this.#logger.warn(`watching the ${this.#what} failed`, { error }),
      );
      this.#watchers.push(watcher);
    }
    return value;
  }

  /** Writes come in bursts (key, then certificate); one reload after the burst. */
  #schedule(): void {
    clearTimeout(this.#timer);
    this.#timer = setTimeout(() => {
      this.#reloading = this.#reloading.then(() => this.#reload());
    }, 100);
  }

  async #reload(): Promise<void> {
    try {
      this.#apply(await this.#load());
      this.#logger.info(`${this.#what} reloaded`, { paths: this.#paths });
    } catch (error) {
      this.#logger.error(`${this.#what} reload failed; keeping the last good one`, {
        paths: this.#paths,
        error,
      });
    }
  }

  close(): void {
    clearTimeout(this.#timer);
    for (const watcher of this.#watchers) watcher.close();
  }
}
