import {
  CoreV1Api,
  type KubeConfig,
  PatchStrategy,
  setHeaderOptions,
} from '@kubernetes/client-node';
import type { Logger } from '../../common/log.ts';

/** Says a Kubernetes client error was a 404 (the object does not exist). */
function notFound(error: unknown): boolean {
  return (error as { code?: number }).code === 404;
}

/**
 * The mesh's trust bundle as a ConfigMap (`postern-ca-root`, key ca.crt) in
 * every namespace, which injected sidecars mount to verify the control plane
 * (as Istio's istio-ca-root-cert): created where missing, updated where it
 * differs, at start, after a root rotation step, when namespaces appear, and
 * every minute besides. Several replicas write the same content, so they
 * agree whoever writes first.
 */
export class TrustBundleConfigMaps {
  readonly #api: CoreV1Api;
  readonly #logger: Logger;
  readonly #name: string;
  readonly #namespaces: () => readonly string[];
  #bundle: string | undefined;
  #timer: NodeJS.Timeout | undefined;
  #running: Promise<void> = Promise.resolve();

  constructor(
    kubeConfig: KubeConfig,
    logger: Logger,
    options: { name: string; namespaces: () => readonly string[]; intervalMs?: number },
  ) {
    this.#api = kubeConfig.makeApiClient(CoreV1Api);
    this.#logger = logger;
    this.#name = options.name;
    this.#namespaces = options.namespaces;
    this.#timer = setInterval(() => void this.sync(), options.intervalMs ?? 60_000);
    this.#timer.unref();
  }

  /** The bundle to publish; resolves once every namespace has it (or its failure is logged). */
  set(bundlePem: string): Promise<void> {
    this.#bundle = bundlePem;
    return this.sync();
  }

  /** One pass over the namespaces, after any pass already running. */
  sync(): Promise<void> {
    this.#running = this.#running.then(() => this.#pass());
    return this.#running;
  }

  async #pass(): Promise<void> {
    const bundle = this.#bundle;
    if (bundle === undefined) return;
    for (const namespace of this.#namespaces()) {
      try {
        await this.#publish(namespace, bundle);
      } catch (error) {
        this.#logger.warn('could not publish the trust bundle ConfigMap; retrying later', {
          namespace,
          name: this.#name,
          error,
        });
      }
    }
  }

  async #publish(namespace: string, bundle: string): Promise<void> {
    const name = this.#name;
    let current: { data?: Record<string, string> } | undefined;
    try {
      current = await this.#api.readNamespacedConfigMap({ name, namespace });
    } catch (error) {
      if (!notFound(error)) throw error;
    }
    if (!current) {
      await this.#api.createNamespacedConfigMap({
        namespace,
        body: {
          apiVersion: 'v1',
          kind: 'ConfigMap',
          metadata: { name, namespace, labels: { 'app.kubernetes.io/part-of': 'postern' } },
          data: { 'ca.crt': bundle },
        },
      });
      return;
    }
    if (current.data?.['ca.crt'] === bundle) return;
    await this.#api.patchNamespacedConfigMap(
      { name, namespace, body: { data: { 'ca.crt': bundle } } },
      setHeaderOptions('Content-Type', PatchStrategy.MergePatch),
    );
  }

  close(): void {
    clearInterval(this.#timer);
  }
}
