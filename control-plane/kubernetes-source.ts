/**
 * In-cluster policy source: RoutePolicy resources read from the Kubernetes
 * API with a list-then-watch informer (@kubernetes/client-node). The
 * informer resumes by itself only after a watch expiry (410) or timeout; after
 * any other error it stops, so this source restarts it with backoff. Until a
 * first list has succeeded, `start()` keeps trying rather than report an
 * empty policy set (which would hand every workload the mesh default).
 *
 * Resources are validated one by one, as the API server's admission would
 * (the /validate webhook refuses them up front; this is the second line): an
 * invalid new resource is ignored, an invalid update keeps that resource's
 * last valid version, and a namespace whose resources conflict keeps its last
 * good set. Every rejection is logged with the resource and JSON path.
 */

import { readFile } from 'node:fs/promises';
import {
  CustomObjectsApi,
  type KubeConfig,
  type KubernetesObject,
  makeInformer,
} from '@kubernetes/client-node';
import { backoffDelay, sleep } from '../common/backoff.ts';
import type { Logger } from '../common/log.ts';
import { overlappingSelectorProblems } from '../common/policy/policy-set.ts';
import { formatProblem } from '../common/policy/problems.ts';
import { API_VERSION, type RoutePolicy } from '../common/policy/schema.ts';
import { LINT_ROUTE_LIMIT, validateRoutePolicy } from '../common/policy/validate.ts';
import { writeFileAtomic } from '../common/private-file.ts';

const [GROUP, VERSION] = API_VERSION.split('/') as [string, string];
const PLURAL = 'routepolicies';

const keyOf = (object: KubernetesObject) =>
  `${object.metadata?.namespace ?? 'default'}/${object.metadata?.name ?? ''}`;

export class KubernetesPolicySource {
  readonly #logger: Logger;
  readonly #onChange: (policies: readonly RoutePolicy[]) => void;
  readonly #informer: ReturnType<typeof makeInformer<KubernetesObject>>;
  /** The last valid version of each resource, by namespace/name. */
  readonly #valid = new Map<string, RoutePolicy>();
  #scheduled = false;
  #current: readonly RoutePolicy[] = [];
  #failure: unknown;
  #started = false;
  #restarting = false;
  readonly #closed = new AbortController();
  readonly #lastValidFile: string | undefined;
  #saving: Promise<void> = Promise.resolve();

  /**
   * `lastValidFile` (in the control plane's state folder) keeps each
   * resource's last valid version across restarts: without it, a resource
   * that became invalid while the control plane was down would come back as
   * "new and invalid" and be ignored, dropping what its old version denied.
   */
  constructor(
    kubeConfig: KubeConfig,
    logger: Logger,
    onChange: (policies: readonly RoutePolicy[]) => void,
    lastValidFile?: string,
  ) {
    this.#logger = logger;
    this.#onChange = onChange;
    this.#lastValidFile = lastValidFile;
    const api = kubeConfig.makeApiClient(CustomObjectsApi);
    this.#informer = makeInformer<KubernetesObject>(
      kubeConfig,
      `/apis/${GROUP}/${VERSION}/${PLURAL}`,
      () => api.listClusterCustomObject({ group: GROUP, version: VERSION, plural: PLURAL }),
    );
    for (const event of ['add', 'update', 'delete'] as const)
      this.#informer.on(event, () => this.#schedule());
    this.#informer.on('error', (error) => {
      this.#failure = error ?? new Error('the RoutePolicy list or watch failed');
      if (this.#started) void this.#restart();
    });
  }

  /** Lists the RoutePolicies, then watches them; resolves with the first valid set once a list has succeeded. */
  async start(): Promise<readonly RoutePolicy[]> {
    await this.#loadLastValid();
    for (let attempt = 0; !this.#closed.signal.aborted; attempt++) {
      this.#failure = undefined;
      await this.#informer.start();
      if (!this.#failure) break;
      const delay = backoffDelay(attempt, { baseMs: 500, maxMs: 30_000 });
      this.#logger.warn('listing RoutePolicies failed; retrying', {
        error: this.#failure,
        retryInMs: delay,
      });
      await sleep(delay, this.#closed.signal);
    }
    this.#started = true;
    this.#recompute();
    return this.#current;
  }

  /** After a failure the informer has stopped: start it again (it resumes from the last resourceVersion), with backoff. */
  async #restart(): Promise<void> {
    if (this.#restarting) return;
    this.#restarting = true;
    for (let attempt = 0; !this.#closed.signal.aborted; attempt++) {
      const delay = backoffDelay(attempt, { baseMs: 500, maxMs: 30_000 });
      this.#logger.warn(
        'RoutePolicy watch failed; keeping the current policies and restarting it',
        {
          error: this.#failure,
          retryInMs: delay,
        },
      );
      await sleep(delay, this.#closed.signal);
      this.#failure = undefined;
      await this.#informer.start();
      if (!this.#failure) break;
    }
    this.#restarting = false;
  }

  #schedule(): void {
    if (this.#scheduled) return;
    this.#scheduled = true;
    setImmediate(() => {
      this.#scheduled = false;
      this.#recompute();
      this.#onChange(this.#current);
    });
  }

  #recompute(): void {
    const objects = this.#informer.list();
    const present = new Set(objects.map(keyOf));
    for (const key of this.#valid.keys()) if (!present.has(key)) this.#valid.delete(key);
    for (const object of objects) {
      const key = keyOf(object);
      const result = validateRoutePolicy(object, key, new Date(), { lintUpTo: LINT_ROUTE_LIMIT });
      if (result.policy) {
        // Only what the sidecars need travels: not uid, resourceVersion, managedFields...
        const { name, namespace } = result.policy.metadata;
        this.#valid.set(key, { ...result.policy, metadata: { name, namespace } });
        continue;
      }
      this.#logger.error(
        this.#valid.has(key)
          ? 'invalid RoutePolicy update ignored; keeping its last valid version'
          : 'invalid RoutePolicy ignored',
        { resource: key, errors: result.errors.map((p) => formatProblem(p)) },
      );
    }
    // Conflicts are judged per namespace (selectors never cross one), so a
    // conflict in one tenant's namespace freezes that namespace only.
    const namespaceOf = (policy: RoutePolicy) => policy.metadata.namespace ?? 'default';
    const candidate = [...this.#valid.values()].sort((a, b) => keyOf(a).localeCompare(keyOf(b)));
    const namespaces = new Set([...candidate, ...this.#current].map(namespaceOf));
    const next: RoutePolicy[] = [];
    for (const namespace of namespaces) {
      const mine = candidate.filter((policy) => namespaceOf(policy) === namespace);
      const conflicts = overlappingSelectorProblems(mine);
      if (!conflicts.length) {
        next.push(...mine);
        continue;
      }
      this.#logger.error("RoutePolicies conflict; keeping the namespace's last good set", {
        namespace,
        errors: conflicts.map(([i, message]) => `RoutePolicy ${keyOf(mine[i]!)}: ${message}`),
      });
      next.push(...this.#current.filter((policy) => namespaceOf(policy) === namespace));
    }
    this.#current = next.sort((a, b) => keyOf(a).localeCompare(keyOf(b)));
    this.#saveLastValid();
  }

  async #loadLastValid(): Promise<void> {
    if (!this.#lastValidFile) return;
    let saved: unknown[];
    try {
      saved = JSON.parse(await readFile(this.#lastValidFile, 'utf8')) as unknown[];
    } catch (error) {
      if ((error as NodeJS.ErrnoException).code !== 'ENOENT') {
        this.#logger.warn('could not read the last valid RoutePolicies; starting without them', {
          error,
        });
      }
      return;
    }
    for (const object of Array.isArray(saved) ? saved : []) {
      const { policy } = validateRoutePolicy(object, 'saved', new Date(), { lintUpTo: 0 });
      if (policy) this.#valid.set(keyOf(policy), policy);
    }
  }

  #saveLastValid(): void {
    if (!this.#lastValidFile) return;
    this.#saving = this.#saving
      .then(() => writeFileAtomic(this.#lastValidFile!, JSON.stringify([...this.#valid.values()])))
      .catch((error: unknown) =>
        this.#logger.warn('could not save the last valid RoutePolicies', { error }),
      );
  }

  async close(): Promise<void> {
    this.#closed.abort();
    await this.#informer.stop();
    await this.#saving;
  }
}
