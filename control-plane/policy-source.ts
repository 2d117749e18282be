import { type FSWatcher, watch } from 'node:fs';
import type { Logger } from '../common/log.ts';
import { loadPolicies } from '../common/policy/files.ts';
import type { HttpRoute } from '../common/policy/httproute-schema.ts';
import type { RoutePolicy } from '../common/policy/schema.ts';
import { LINT_ROUTE_LIMIT } from '../common/policy/validate.ts';

/** What a policy source holds: RoutePolicies, and the HTTPRoutes gateways route by. */
export interface PolicySet {
  readonly policies: readonly RoutePolicy[];
  readonly httpRoutes: readonly HttpRoute[];
}

/**
 * RoutePolicies and HTTPRoutes from a folder of YAML files, reloaded when the folder
 * changes. A reload is all or nothing: if any file has an error, every
 * problem is logged and the last good set stays in force (dropping one bad
 * policy could silently open what it denied).
 */
export class PolicyDirectory {
  readonly #dir: string;
  readonly #logger: Logger;
  readonly #onChange: (set: PolicySet) => void;
  #watcher: FSWatcher | undefined;
  #timer: NodeJS.Timeout | undefined;
  #reloading: Promise<void> = Promise.resolve();

  constructor(dir: string, logger: Logger, onChange: (set: PolicySet) => void) {
    this.#dir = dir;
    this.#logger = logger;
    this.#onChange = onChange;
  }

  /** Loads the folder; throws with every problem listed if the first load is invalid. */
  async start(): Promise<PolicySet> {
    const loaded = await loadPolicies([this.#dir], new Date(), { lintUpTo: LINT_ROUTE_LIMIT });
    for (const warning of loaded.warnings) this.#logger.warn('policy warning', { warning });
    if (loaded.errors.length) {
      throw new Error(`invalid policies in ${this.#dir}:\n${loaded.errors.join('\n')}`);
    }
    this.#watcher = watch(this.#dir, () => this.#schedule());
    return { policies: loaded.policies, httpRoutes: loaded.httpRoutes };
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
      const loaded = await loadPolicies([this.#dir], new Date(), { lintUpTo: LINT_ROUTE_LIMIT });
      for (const warning of loaded.warnings) this.#logger.warn('policy warning', { warning });
      if (loaded.errors.length) {
        this.#logger.error('policy reload rejected; keeping the last good policies', {
          errors: loaded.errors,
        });
        return;
      }
      this.#logger.info('policies reloaded', {
        count: loaded.policies.length,
        httpRoutes: loaded.httpRoutes.length,
      });
      this.#onChange({ policies: loaded.policies, httpRoutes: loaded.httpRoutes });
    } catch (error) {
      this.#logger.error('policy reload failed; keeping the last good policies', { error });
    }
  }

  close(): void {
    clearTimeout(this.#timer);
    this.#watcher?.close();
  }
}
