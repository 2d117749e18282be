import type { KubeConfig } from '@kubernetes/client-node';
import type { Logger } from '../../common/log.ts';
import type { SnapshotHub } from '../snapshot-hub.ts';
import type { TokenStore } from '../tokens.ts';
import type { WorkloadCredentials } from '../workload-credentials.ts';
import { ClusterCredentials } from './cluster-credentials.ts';
import { ServiceDiscovery } from './discovery.ts';
import { NamespaceLabels } from './namespace-labels.ts';
import { PodIndex } from './pod-index.ts';
import { TokenReviewer } from './token-review.ts';
import { TrustBundleConfigMaps } from './trust-bundle-config-maps.ts';
import { WebhookCaBundle } from './webhook-ca.ts';

/** How long pod events gather before the control plane re-checks who is still bound. */
const POD_CHANGE_DELAY_MS = 1_000;

export interface ClusterOptions {
  readonly logger: Logger;
  readonly trustDomain: string;
  readonly tokens: TokenStore;
  readonly hub: SnapshotHub;
  /** The ConfigMap each namespace gets the trust bundle in (what injected sidecars mount). */
  readonly caConfigMap: string;
  /** Whether this control plane serves the admission webhooks (then it keeps their caBundle). */
  readonly servesWebhooks: boolean;
  /** Called when pods come and go: identities may have lost their last pod. */
  readonly onPodsChange: () => void;
}

/** What the control plane does with the Kubernetes API besides policies (kubernetes-source.ts). */
export interface Cluster {
  readonly credentials: WorkloadCredentials;
  /** A namespace's labels (the injection webhook's opt-in), read from the API if not seen yet. */
  namespaceLabels(name: string): Promise<Readonly<Record<string, string>>>;
  /** Publishes the mesh's trust bundle: each namespace's ConfigMap, and the webhooks' caBundle. */
  setTrustBundle(bundlePem: string): Promise<void>;
  close(): Promise<void>;
}

/**
 * Starts the cluster side of the control plane: the Namespace and Pod
 * informers, ServiceAccount-token bootstrap through TokenReview, discovery
 * of mesh endpoints from Services and EndpointSlices into the hub's
 * registry, the trust bundle ConfigMaps, and the webhooks' caBundle.
 * Resolves once every list has succeeded, so that the first snapshots
 * carry the cluster as it is.
 */
export async function startCluster(
  kubeConfig: KubeConfig,
  options: ClusterOptions,
): Promise<Cluster> {
  const { logger } = options;
  let bundleConfigMaps: TrustBundleConfigMaps | undefined;
  const namespaces = new NamespaceLabels(kubeConfig, logger, () => void bundleConfigMaps?.sync());
  const pods = new PodIndex(kubeConfig, options.trustDomain, logger);
  const discovery = new ServiceDiscovery(kubeConfig, pods, logger, (discovered) =>
    options.hub.setDiscovered(discovered),
  );
  await Promise.all([namespaces.start(), pods.start()]);
  await discovery.start();
  // Pod events come in bursts (a rollout), and a pod gone is no emergency
  // (its sidecar went with it): told at most once a second.
  let podsChanged: NodeJS.Timeout | undefined;
  const unsubscribe = pods.onChange(() => {
    podsChanged ??= setTimeout(() => {
      podsChanged = undefined;
      options.onPodsChange();
    }, POD_CHANGE_DELAY_MS).unref();
  });
  bundleConfigMaps = new TrustBundleConfigMaps(kubeConfig, logger, {
    name: options.caConfigMap,
    namespaces: () => namespaces.names(),
  });
  const webhookCa = options.servesWebhooks ? new WebhookCaBundle(kubeConfig, logger) : undefined;
  const configMaps = bundleConfigMaps;
  return {
    credentials: new ClusterCredentials(
      options.tokens,
      new TokenReviewer(kubeConfig),
      pods,
      logger,
    ),
    namespaceLabels: (name) => namespaces.labelsFresh(name),
    async setTrustBundle(bundlePem) {
      await Promise.all([webhookCa?.set(bundlePem), configMaps.set(bundlePem)]);
    },
    async close() {
      unsubscribe();
      clearTimeout(podsChanged);
      webhookCa?.close();
      configMaps.close();
      await Promise.all([discovery.close(), pods.close(), namespaces.close()]);
    },
  };
}
