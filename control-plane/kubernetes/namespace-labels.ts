import type { KubeConfig } from '@kubernetes/client-node';
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
  readonly #closed = new AbortController();
  #byName = new Map<string, Readonly<Record<string, string>>>();

  readonly #onChange: (() => void) | undefined;

  /** `onChange`: told when namespaces come, go or change labels. */
  constructor(kubeConfig: KubeConfig, logger: Logger, onChange?: () => void) {
    this.#onChange = onChange;
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

  async close(): Promise<void> {
    this.#closed.abort();
    await this.#informer.stop();
  }
}
