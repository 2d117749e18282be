import {
  AdmissionregistrationV1Api,
  type KubeConfig,
  PatchStrategy,
  setHeaderOptions,
} from '@kubernetes/client-node';
import type { Logger } from '../../common/log.ts';

/** The webhook configurations manifests/webhooks/ installs, whose caBundle the control plane keeps. */
export const WEBHOOK_CONFIGURATIONS = {
  mutating: 'postern-sidecar-injector',
  validating: 'postern-policy-validator',
} as const;

interface WebhookConfiguration {
  readonly webhooks?: readonly { readonly clientConfig?: { readonly caBundle?: string } }[];
}

/** JSON Patch setting every webhook's caBundle to `bundle` (base64); empty when each has it already. */
export function caBundlePatch(
  configuration: WebhookConfiguration,
  bundlePem: string,
): { op: 'add'; path: string; value: string }[] {
  const value = Buffer.from(bundlePem).toString('base64');
  return (configuration.webhooks ?? []).flatMap((webhook, i) =>
    webhook.clientConfig?.caBundle === value
      ? []
      : [{ op: 'add' as const, path: `/webhooks/${i}/clientConfig/caBundle`, value }],
  );
}

/**
 * Keeps the caBundle of the control plane's own webhook configurations the
 * mesh's trust bundle (its serving certificate comes from the mesh CA, so
 * the API server verifies the webhooks with it): at start, after a root
 * rotation step, and every few minutes in case someone re-applied the
 * manifests (which carry no caBundle). A configuration that is missing is
 * logged, not fatal: the webhooks are optional to the rest of the mesh.
 */
export class WebhookCaBundle {
  readonly #api: AdmissionregistrationV1Api;
  readonly #logger: Logger;
  #bundle: string | undefined;
  #timer: NodeJS.Timeout | undefined;

  constructor(kubeConfig: KubeConfig, logger: Logger, intervalMs = 300_000) {
    this.#api = kubeConfig.makeApiClient(AdmissionregistrationV1Api);
    this.#logger = logger;
    this.#timer = setInterval(() => void this.sync(), intervalMs);
    this.#timer.unref();
  }

  /** Sets the bundle to keep and writes it where it differs; resolves when both configurations are done. */
  async set(bundlePem: string): Promise<void> {
    this.#bundle = bundlePem;
    await this.sync();
  }

  async sync(): Promise<void> {
    const bundle = this.#bundle;
    if (bundle === undefined) return;
    const json = setHeaderOptions('Content-Type', PatchStrategy.JsonPatch);
    await this.#one('mutating', async () => {
      const name = WEBHOOK_CONFIGURATIONS.mutating;
      const current = await this.#api.readMutatingWebhookConfiguration({ name });
      const body = caBundlePatch(current, bundle);
      if (body.length) await this.#api.patchMutatingWebhookConfiguration({ name, body }, json);
      return body.length;
    });
    await this.#one('validating', async () => {
      const name = WEBHOOK_CONFIGURATIONS.validating;
      const current = await this.#api.readValidatingWebhookConfiguration({ name });
      const body = caBundlePatch(current, bundle);
      if (body.length) await this.#api.patchValidatingWebhookConfiguration({ name, body }, json);
      return body.length;
    });
  }

  async #one(
    kind: keyof typeof WEBHOOK_CONFIGURATIONS,
    patch: () => Promise<number>,
  ): Promise<void> {
    try {
      const changed = await patch();
      if (changed)
        this.#logger.info('webhook caBundle set to the mesh trust bundle', {
          kind,
          webhooks: changed,
        });
    } catch (error) {
      this.#logger.warn('could not set the webhook caBundle; retrying later', {
        configuration: WEBHOOK_CONFIGURATIONS[kind],
        error,
      });
    }
  }

  close(): void {
    clearInterval(this.#timer);
  }
}
