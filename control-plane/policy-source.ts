import { type FSWatcher, watch } from 'node:fs';
import type { Logger } from '../common/log.ts';
import {
  combineFiles,
  type LoadedFile,
  loadPolicyFile,
  policyFiles,
} from '../common/policy/files.ts';
import type { HttpRoute } from '../common/policy/httproute-schema.ts';
import type { RoutePolicy } from '../common/policy/schema.ts';
import { LINT_ROUTE_LIMIT } from '../common/policy/validate.ts';

/** What a policy source holds: RoutePolicies, and the HTTPRoutes gateways route by. */
export interface PolicySet {
  readonly policies: readonly RoutePolicy[];
  readonly httpRoutes: readonly HttpRoute[];
}

/**
 * RoutePolicies and HTTPRoutes from a folder of YAML files, reloaded when the
 * folder changes. Each file stands on its own: a file with an error keeps
 * its last good version in force (dropping a bad file's policies could
 * silently open what they denied) and its problems are logged, while every
 * other file's changes apply. A new file that is broken from the start adds
 * nothing. Problems only the whole set has (one resource defined in two
 * files, overlapping selectors) keep the whole last good set. The first
 * load is all or nothing: the control plane does not start on a broken
 * folder.
 */
export class PolicyDirectory {
  readonly #dir: string;
  readonly #logger: Logger;
  readonly #onChange: (set: PolicySet) => void;
  #watcher: FSWatcher | undefined;
  #timer: NodeJS.Timeout | undefined;
  #reloading: Promise<void> = Promise.resolve();
  /** Each file's last version without errors, by path. */
  #lastGood = new Map<string, LoadedFile>();

  constructor(dir: string, logger: Logger, onChange: (set: PolicySet) => void) {
    this.#dir = dir;
    this.#logger = logger;
    this.#onChange = onChange;
  }

  /** Loads the folder; throws with every problem listed if any file is invalid. */
  async start(): Promise<PolicySet> {
    const files = await this.#loadFiles();
    const combined = combineFiles(files);
    const errors = [...files.flatMap((f) => f.errors), ...combined.errors];
    if (errors.length) throw new Error(`invalid policies in ${this.#dir}:\n${errors.join('\n')}`);
    this.#lastGood = new Map(files.map((f) => [f.file, f]));
    this.#watcher = watch(this.#dir, () => this.#schedule());
    return { policies: combined.policies, httpRoutes: combined.httpRoutes };
  }

  async #loadFiles(): Promise<LoadedFile[]> {
    const now = new Date();
    const files = await Promise.all(
      (await policyFiles([this.#dir])).map((file) =>
        loadPolicyFile(file, now, { lintUpTo: LINT_ROUTE_LIMIT }),
      ),
    );
    for (const file of files)
      for (const warning of file.warnings) this.#logger.warn('policy warning', { warning });
    return files;
  }

  /** Editors save in bursts (write, rename, chmod); one reload after the burst. */
  #schedule(): void {
    clearTimeout(this.#timer);
    this.#timer = setTimeout(() => {
      this.#reloading = this.#reloading.then(() => this.#reload());
    }, 50);
  }

  async #reload(): Promise<void> {
    try {
      const chosen: LoadedFile[] = [];
      const broken: LoadedFile[] = [];
      for (const file of await this.#loadFiles()) {
        if (!file.errors.length) {
          chosen.push(file);
          continue;
        }
        broken.push(file);
        const last = this.#lastGood.get(file.file);
        if (last) chosen.push(last);
      }
      const combined = combineFiles(chosen);
      if (combined.errors.length) {
        this.#logger.error('policy reload rejected; keeping the last good policies', {
          errors: [...broken.flatMap((f) => f.errors), ...combined.errors],
        });
        return;
      }
      for (const file of broken) {
        this.#logger.error('policy file rejected; its last good version stays in force', {
          file: file.file,
          kept: this.#lastGood.has(file.file),
          errors: file.errors,
        });
      }
      this.#lastGood = new Map(chosen.map((f) => [f.file, f]));
      this.#logger.info('policies reloaded', {
        count: combined.policies.length,
        httpRoutes: combined.httpRoutes.length,
        rejectedFiles: broken.length,
      });
      this.#onChange({ policies: combined.policies, httpRoutes: combined.httpRoutes });
    } catch (error) {
      this.#logger.error('policy reload failed; keeping the last good policies', { error });
    }
  }

  close(): void {
    clearTimeout(this.#timer);
    this.#watcher?.close();
  }
}
