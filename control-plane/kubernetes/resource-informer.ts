import {
  CoreV1Api,
  CustomObjectsApi,
  type KubeConfig,
  type KubernetesObject,
  makeInformer,
} from '@kubernetes/client-node';
import { backoffDelay, sleep } from '../../common/backoff.ts';
import type { Logger } from '../../common/log.ts';

/** A cluster-wide resource kind, as the API addresses it: a custom resource, or the core group's (group ''). */
export interface ResourceKind {
  readonly group: string;
  readonly version: string;
  readonly plural: string;
  /** For logs: RoutePolicy, HTTPRoute, Namespace. */
  readonly kind: string;
  /**
   * The kind may not be installed (HTTPRoute without the Gateway API's
   * CRDs): a list the API answers 404 means none for now, and the informer
   * keeps trying in the background instead of holding the start.
   */
  readonly optional?: boolean;
}

export const NAMESPACES: ResourceKind = Object.freeze({
  group: '',
  version: 'v1',
  plural: 'namespaces',
  kind: 'Namespace',
});
export const PODS: ResourceKind = Object.freeze({
  group: '',
  version: 'v1',
  plural: 'pods',
  kind: 'Pod',
});
export const SERVICES: ResourceKind = Object.freeze({
  group: '',
  version: 'v1',
  plural: 'services',
  kind: 'Service',
});
export const ENDPOINT_SLICES: ResourceKind = Object.freeze({
  group: 'discovery.k8s.io',
  version: 'v1',
  plural: 'endpointslices',
  kind: 'EndpointSlice',
});

/** The core group's cluster-wide lists this informer knows. */
const CORE_LISTS = {
  namespaces: (core: CoreV1Api) => core.listNamespace(),
  pods: (core: CoreV1Api) => core.listPodForAllNamespaces(),
  services: (core: CoreV1Api) => core.listServiceForAllNamespaces(),
} as const;

/**
 * A list-then-watch informer (@kubernetes/client-node) of one kind that
 * keeps itself running. The library's informer resumes by itself only after
 * a watch expiry (410) or timeout; after any other error it stops, so this
 * restarts it with backoff, keeping what it listed last. `start()` resolves
 * only once a list has succeeded: an empty list because the API failed
 * would read as "no resources".
 */
export class ResourceInformer {
  readonly #kind: ResourceKind;
  readonly #logger: Logger;
  readonly #informer: ReturnType<typeof makeInformer<KubernetesObject>>;
  readonly #closed: AbortSignal;
  #failure: unknown;
  #started = false;
  #restarting = false;

  constructor(
    kubeConfig: KubeConfig,
    kind: ResourceKind,
    logger: Logger,
    onChange: () => void,
    closed: AbortSignal,
  ) {
    this.#kind = kind;
    this.#logger = logger;
    this.#closed = closed;
    const { group, version, plural } = kind;
    if (group === '') {
      const core = kubeConfig.makeApiClient(CoreV1Api);
      const list = CORE_LISTS[plural as keyof typeof CORE_LISTS];
      if (!list) throw new Error(`no core list for ${plural}`);
      this.#informer = makeInformer<KubernetesObject>(kubeConfig, `/api/${version}/${plural}`, () =>
        list(core),
      );
    } else {
      // Any group's cluster-wide list is GET /apis/<group>/<version>/<plural>,
      // built-in groups (discovery.k8s.io) as much as custom resources.
      const api = kubeConfig.makeApiClient(CustomObjectsApi);
      this.#informer = makeInformer<KubernetesObject>(
        kubeConfig,
        `/apis/${group}/${version}/${plural}`,
        () => api.listClusterCustomObject({ group, version, plural }),
      );
    }
    for (const event of ['add', 'update', 'delete'] as const) this.#informer.on(event, onChange);
    this.#informer.on('error', (error) => {
      this.#failure = error ?? new Error(`the ${kind.kind} list or watch failed`);
      if (this.#started) void this.#restart();
    });
  }

  /** Lists, then watches; resolves once a list has succeeded (retrying with backoff until then). */
  async start(): Promise<void> {
    for (let attempt = 0; !this.#closed.aborted; attempt++) {
      this.#failure = undefined;
      await this.#informer.start();
      if (!this.#failure) break;
      if (this.#kind.optional && (this.#failure as { code?: number }).code === 404) {
        this.#logger.info(
          `${this.#kind.kind}s are not installed in this cluster; checking again in the background`,
        );
        this.#started = true;
        void this.#restart();
        return;
      }
      const delay = backoffDelay(attempt, { baseMs: 500, maxMs: 30_000 });
      this.#logger.warn(`listing ${this.#kind.kind}s failed; retrying`, {
        error: this.#failure,
        retryInMs: delay,
      });
      await sleep(delay, this.#closed);
    }
    this.#started = true;
  }

  /** What the last list and the watch since say exists. */
  list(): readonly KubernetesObject[] {
    return this.#informer.list();
  }

  /** After a failure the informer has stopped: start it again (it resumes from the last resourceVersion), with backoff. */
  async #restart(): Promise<void> {
    if (this.#restarting) return;
    this.#restarting = true;
    for (let attempt = 0; !this.#closed.aborted; attempt++) {
      const delay = backoffDelay(attempt, { baseMs: 500, maxMs: 30_000 });
      const missing = this.#kind.optional && (this.#failure as { code?: number })?.code === 404;
      this.#logger[missing ? 'info' : 'warn'](
        missing
          ? `${this.#kind.kind}s are still not installed; checking again`
          : `${this.#kind.kind} watch failed; keeping what it listed and restarting it`,
        {
          error: this.#failure,
          retryInMs: delay,
        },
      );
      await sleep(delay, this.#closed);
      this.#failure = undefined;
      await this.#informer.start();
      if (!this.#failure) break;
    }
    this.#restarting = false;
  }

  stop(): Promise<void> {
    return this.#informer.stop();
  }
}
