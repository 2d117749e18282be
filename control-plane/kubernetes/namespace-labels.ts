import { CoreV1Api, type KubeConfig } from '@kubernetes/client-node';
import type { Logger } from '../../common/log.ts';
import { NAMESPACES, ResourceInformer } from './resource-informer.ts';

/**
 * Every namespace, with its labels, from a Namespace informer: the
 * injection webhook asks whether a pod's namespace opted in
 * (`postern.dev/inject: enabled`; an AdmissionReview does not carry the
 * namespace), and the trust bundle ConfigMap goes into each.
 */
export class NamespaceLabels {
  readonly #informer: ResourceInformer;
  readonly #core: CoreV1Api;
  readonly #logger: Logger;
  readonly #closed = new AbortController();
  #byName = new Map<string, Readonly<Record<string, string>>>();

  readonly #onChange: (() => void) | undefined;

  /** `onChange`: told when namespaces come, go or change labels. */
  constructor(kubeConfig: KubeConfig, logger: Logger, onChange?: () => void) {
    this.#onChange = onChange;
    this.#core = kubeConfig.makeApiClient(CoreV1Api);
    this.#logger = logger;
    this.#informer = new ResourceInformer(
      kubeConfig,
      NAMESPACES,
      logger,
      () => {
        this.#index();
        this.#onChange?.();
      },
      this.#closed.signal,
    );
  }

  /** Every namespace's name. */
  names(): string[] {
    return [...this.#byName.keys()];
  }

  async start(): Promise<void> {
    await this.#informer.start();
    this.#index();
  }

  #index(): void {
    this.#byName = new Map(
      this.#informer
        .list()
        .map((ns) => [ns.metadata?.name ?? '', Object.freeze({ ...(ns.metadata?.labels ?? {}) })]),
    );
  }

  /** The namespace's labels; none for a namespace not seen (yet). */
  labelsOf(name: string): Readonly<Record<string, string>> {
    return this.#byName.get(name) ?? {};
  }

  /**
   * The namespace's labels, read from the API when the informer has not
   * seen it yet: `kubectl create namespace` with its label and a Deployment
   * right after is a common script, and the first pods must not escape
   * injection because the watch event trails them. A read that fails (or
   * takes over `timeoutMs`, the webhook's own deadline being short) answers
   * no labels: the pod is then not injected, as failurePolicy Ignore would.
   */
  async labelsFresh(name: string, timeoutMs = 2_000): Promise<Readonly<Record<string, string>>> {
    const known = this.#byName.get(name);
    if (known) return known;
    let timer: NodeJS.Timeout | undefined;
    try {
      const namespace = await Promise.race([
        this.#core.readNamespace({ name }),
        new Promise<never>((_, reject) => {
          timer = setTimeout(() => reject(new Error(`no answer in ${timeoutMs} ms`)), timeoutMs);
        }),
      ]);
      return Object.freeze({ ...(namespace.metadata?.labels ?? {}) });
    } catch (error) {
      this.#logger.warn('reading a namespace the informer has not seen failed', {
        namespace: name,
        error,
      });
      return {};
    } finally {
      clearTimeout(timer);
    }
  }

  async close(): Promise<void> {
    this.#closed.abort();
    await this.#informer.stop();
  }
}
