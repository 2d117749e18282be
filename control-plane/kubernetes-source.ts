/**
 * In-cluster policy source: RoutePolicy and HTTPRoute resources read from
 * the Kubernetes API with list-then-watch informers that keep themselves
 * running (kubernetes/resource-informer.ts). Until a first list of each has
 * succeeded, `start()` keeps trying rather than report an empty policy set
 * (which would hand every workload the mesh default). HTTPRoutes get their
 * status.parents written the Gateway API way (kubernetes/httproute-status.ts)
 * for the gateways this control plane serves.
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
  PatchStrategy,
  setHeaderOptions,
} from '@kubernetes/client-node';
import type { Logger } from '../common/log.ts';
import { GATEWAY_API_VERSION, type HttpRoute } from '../common/policy/httproute-schema.ts';
import { overlappingSelectorProblems } from '../common/policy/policy-set.ts';
import { formatProblem, type Problem } from '../common/policy/problems.ts';
import { API_VERSION, type RoutePolicy } from '../common/policy/schema.ts';
import { LINT_ROUTE_LIMIT, validateRoutePolicy } from '../common/policy/validate.ts';
import { validateHttpRoute } from '../common/policy/validate-httproute.ts';
import { writeFileAtomic } from '../common/private-file.ts';
import { desiredParents, mergedParents } from './kubernetes/httproute-status.ts';
import { ResourceInformer } from './kubernetes/resource-informer.ts';
import type { PolicySet } from './policy-source.ts';

const [GROUP, VERSION] = API_VERSION.split('/') as [string, string];
const [GATEWAY_GROUP, GATEWAY_VERSION] = GATEWAY_API_VERSION.split('/') as [string, string];
const ROUTE_POLICIES = {
  group: GROUP,
  version: VERSION,
  plural: 'routepolicies',
  kind: 'RoutePolicy',
};
const HTTP_ROUTES = {
  group: GATEWAY_GROUP,
  version: GATEWAY_VERSION,
  plural: 'httproutes',
  kind: 'HTTPRoute',
  // A cluster without the Gateway API's CRDs runs RoutePolicies alone.
  optional: true,
};
/** How often HTTPRoute statuses are reconciled besides on change (gateways connect and leave). */
const STATUS_INTERVAL_MS = 10_000;

const keyOf = (object: { metadata?: { namespace?: string; name?: string } }) =>
  `${object.metadata?.namespace ?? 'default'}/${object.metadata?.name ?? ''}`;

function posternAnnotations(annotations: Record<string, string> | undefined) {
  const ours = Object.entries(annotations ?? {}).filter(([key]) => key.startsWith('postern.dev/'));
  return ours.length ? { annotations: Object.fromEntries(ours) } : {};
}

export interface KubernetesSourceOptions {
  /** The control plane's state file for each resource's last valid version (see the constructor). */
  readonly lastValidFile?: string;
  /** Whether a parentRef names a gateway this control plane serves; its HTTPRoutes get status. */
  readonly serves?: (parent: { name: string; namespace: string }) => boolean;
  /** Statuses reconciled this often besides on change (default 10 s). */
  readonly statusIntervalMs?: number;
}

export class KubernetesPolicySource {
  readonly #logger: Logger;
  readonly #onChange: (set: PolicySet) => void;
  readonly #policies: ResourceInformer;
  readonly #routes: ResourceInformer;
  readonly #api: CustomObjectsApi;
  /** The last valid version of each resource, by namespace/name. */
  readonly #valid = new Map<string, RoutePolicy>();
  readonly #validRoutes = new Map<string, HttpRoute>();
  /** Each HTTPRoute's validation problems, for its status. */
  readonly #routeProblems = new Map<string, readonly Problem[]>();
  #scheduled = false;
  #current: readonly RoutePolicy[] = [];
  #currentRoutes: readonly HttpRoute[] = [];
  readonly #closed = new AbortController();
  readonly #lastValidFile: string | undefined;
  readonly #serves: ((parent: { name: string; namespace: string }) => boolean) | undefined;
  readonly #statusIntervalMs: number;
  #statusTimer: NodeJS.Timeout | undefined;
  #saving: Promise<void> = Promise.resolve();

  /**
   * `lastValidFile` (in the control plane's state folder) keeps each
   * RoutePolicy's last valid version across restarts: without it, a resource
   * that became invalid while the control plane was down would come back as
   * "new and invalid" and be ignored, dropping what its old version denied.
   */
  constructor(
    kubeConfig: KubeConfig,
    logger: Logger,
    onChange: (set: PolicySet) => void,
    options: KubernetesSourceOptions = {},
  ) {
    this.#logger = logger;
    this.#onChange = onChange;
    this.#lastValidFile = options.lastValidFile;
    this.#serves = options.serves;
    this.#statusIntervalMs = options.statusIntervalMs ?? STATUS_INTERVAL_MS;
    this.#api = kubeConfig.makeApiClient(CustomObjectsApi);
    const changed = () => this.#schedule();
    this.#policies = new ResourceInformer(
      kubeConfig,
      ROUTE_POLICIES,
      logger,
      changed,
      this.#closed.signal,
    );
    this.#routes = new ResourceInformer(
      kubeConfig,
      HTTP_ROUTES,
      logger,
      changed,
      this.#closed.signal,
    );
  }

  /** Lists RoutePolicies and HTTPRoutes, then watches them; resolves with the first valid set once both lists have succeeded. */
  async start(): Promise<PolicySet> {
    await this.#loadLastValid();
    await Promise.all([this.#policies.start(), this.#routes.start()]);
    this.#recompute();
    if (this.#serves) {
      this.#statusTimer = setInterval(() => void this.#writeStatuses(), this.#statusIntervalMs);
      this.#statusTimer.unref();
      void this.#writeStatuses();
    }
    return { policies: this.#current, httpRoutes: this.#currentRoutes };
  }

  #schedule(): void {
    if (this.#scheduled) return;
    this.#scheduled = true;
    setImmediate(() => {
      this.#scheduled = false;
      this.#recompute();
      this.#onChange({ policies: this.#current, httpRoutes: this.#currentRoutes });
      if (this.#serves) void this.#writeStatuses();
    });
  }

  /** HTTPRoutes one by one, as RoutePolicies: an invalid one is left out, or keeps its last valid version. */
  #recomputeRoutes(): void {
    const objects = this.#routes.list();
    const present = new Set(objects.map(keyOf));
    for (const key of this.#validRoutes.keys())
      if (!present.has(key)) this.#validRoutes.delete(key);
    for (const key of this.#routeProblems.keys())
      if (!present.has(key)) this.#routeProblems.delete(key);
    for (const object of objects) {
      const key = keyOf(object);
      const result = validateHttpRoute(object, key);
      this.#routeProblems.set(key, result.errors);
      if (result.route) {
        // Only what the gateway reads travels: not uid, resourceVersion, managedFields or status.
        const { name, namespace, creationTimestamp, annotations } = result.route.metadata;
        const { status: _status, ...route } = result.route;
        this.#validRoutes.set(key, {
          ...route,
          metadata: {
            name,
            namespace,
            ...(creationTimestamp
              ? {
                  creationTimestamp: new Date(creationTimestamp)
                    .toISOString()
                    .replace(/\.\d+Z$/, 'Z'),
                }
              : {}),
            // Postern's own (idle timeout, body limit); not kubectl's last-applied copy of the whole object.
            ...posternAnnotations(annotations),
          },
        });
        continue;
      }
      this.#logger.error(
        this.#validRoutes.has(key)
          ? 'invalid HTTPRoute update ignored; keeping its last valid version'
          : 'invalid HTTPRoute ignored',
        { resource: key, errors: result.errors.map((p) => formatProblem(p)) },
      );
    }
    this.#currentRoutes = [...this.#validRoutes.values()].sort((a, b) =>
      keyOf(a).localeCompare(keyOf(b)),
    );
  }

  /**
   * Writes each HTTPRoute's status.parents where it differs from what this
   * controller wants (a merge patch carrying the resourceVersion it read, so
   * a concurrent writer's change is not overwritten: a conflict waits for
   * the next round).
   */
  async #writeStatuses(): Promise<void> {
    const serves = this.#serves!;
    const now = new Date();
    for (const object of this.#routes.list()) {
      const key = keyOf(object);
      const route = object as KubernetesObject & Parameters<typeof desiredParents>[0];
      const desired = desiredParents(route, this.#routeProblems.get(key) ?? [], serves, now);
      const parents = mergedParents(route, desired);
      if (!parents) continue;
      try {
        await this.#api.patchNamespacedCustomObjectStatus(
          {
            group: GATEWAY_GROUP,
            version: GATEWAY_VERSION,
            plural: HTTP_ROUTES.plural,
            namespace: object.metadata?.namespace ?? 'default',
            name: object.metadata?.name ?? '',
            body: {
              metadata: { resourceVersion: object.metadata?.resourceVersion },
              status: { parents },
            },
          },
          setHeaderOptions('Content-Type', PatchStrategy.MergePatch),
        );
      } catch (error) {
        this.#logger.warn('writing HTTPRoute status failed; retrying on the next round', {
          resource: key,
          error,
        });
      }
    }
  }

  #recompute(): void {
    this.#recomputeRoutes();
    const objects = this.#policies.list();
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
    clearInterval(this.#statusTimer);
    await Promise.all([this.#policies.stop(), this.#routes.stop()]);
    await this.#saving;
  }
}
