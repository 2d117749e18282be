/**
 * In-cluster policy source: RoutePolicy resources read from the Kubernetes
 * API with a list-then-watch informer (@kubernetes/client-node), which
 * relists and rewatches by itself after errors.
 *
 * Resources are validated one by one, as the API server's admission would
 * (the /validate webhook refuses them up front; this is the second line): an
 * invalid new resource is ignored, an invalid update keeps that resource's
 * last valid version, and a set whose resources conflict keeps the last good
 * set. Every rejection is logged with the resource and JSON path.
 */
import {
  CustomObjectsApi,
  type KubeConfig,
  type KubernetesObject,
  makeInformer,
} from '@kubernetes/client-node';
import type { Logger } from '../common/log.ts';
import { overlappingSelectorProblems } from '../common/policy/policy-set.ts';
import { API_VERSION, type RoutePolicy } from '../common/policy/schema.ts';
import { formatProblem, validateRoutePolicy } from '../common/policy/validate.ts';

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

  constructor(
    kubeConfig: KubeConfig,
    logger: Logger,
    onChange: (policies: readonly RoutePolicy[]) => void,
  ) {
    this.#logger = logger;
    this.#onChange = onChange;
    const api = kubeConfig.makeApiClient(CustomObjectsApi);
    this.#informer = makeInformer<KubernetesObject>(
      kubeConfig,
      `/apis/${GROUP}/${VERSION}/${PLURAL}`,
      () => api.listClusterCustomObject({ group: GROUP, version: VERSION, plural: PLURAL }),
    );
    for (const event of ['add', 'update', 'delete'] as const)
      this.#informer.on(event, () => this.#schedule());
    this.#informer.on('error', (error) => {
      this.#logger.warn('RoutePolicy watch failed; the informer relists and rewatches', { error });
    });
  }

  /** Lists the RoutePolicies, then watches them; resolves with the first valid set. */
  async start(): Promise<readonly RoutePolicy[]> {
    await this.#informer.start();
    this.#recompute();
    return this.#current;
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
      const result = validateRoutePolicy(object, key);
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
    const candidate = [...this.#valid.values()].sort((a, b) => keyOf(a).localeCompare(keyOf(b)));
    const conflicts = overlappingSelectorProblems(candidate);
    if (conflicts.length) {
      this.#logger.error('RoutePolicies conflict; keeping the last good set', {
        errors: conflicts.map(([i, message]) => `RoutePolicy ${keyOf(candidate[i]!)}: ${message}`),
      });
      return;
    }
    this.#current = candidate;
  }

  async close(): Promise<void> {
    await this.#informer.stop();
  }
}
