import { UnavailableError } from '../../common/errors.ts';
import type { Logger } from '../../common/log.ts';
import type { TokenStore } from '../tokens.ts';
import {
  tokenCredentials,
  type WorkloadBinding,
  type WorkloadCredentials,
} from '../workload-credentials.ts';
import type { MeshPod, PodIndex } from './pod-index.ts';
import type { ReviewedToken, TokenReviewer } from './token-review.ts';

/**
 * How long a bootstrap waits for the pod informer to hear of a pod the API
 * server already vouched for (a sidecar starts within a second of its pod
 * being created, and the watch event may trail it) before answering 503.
 */
const POD_ARRIVAL_WAIT_MS = 3_000;

const podBinding = (pod: MeshPod): WorkloadBinding => ({
  workload: pod.workload,
  namespace: pod.namespace,
  serviceAccount: pod.serviceAccount,
  spiffeId: pod.spiffeId,
  labels: pod.labels,
  via: 'pod',
});

/**
 * Credentials in a cluster: a projected ServiceAccount token (audience
 * `postern`) reviewed by the Kubernetes API proves the namespace, service
 * account and pod; the identity issued is that service account's, and the
 * workload and labels are the pod's own, whatever the CSR or the sidecar
 * says. An SVID renews while a live pod of its identity exists, and a
 * snapshot watch registers as the live pod at the sidecar's address.
 * Operator-minted bootstrap tokens keep working beside them (a VM, a
 * gateway outside the cluster).
 */
export class ClusterCredentials implements WorkloadCredentials {
  readonly #tokens: WorkloadCredentials;
  readonly #reviewer: Pick<TokenReviewer, 'accepts' | 'review'>;
  readonly #pods: PodIndex;
  readonly #logger: Logger;

  constructor(tokens: TokenStore, reviewer: TokenReviewer, pods: PodIndex, logger: Logger) {
    this.#tokens = tokenCredentials(tokens);
    this.#reviewer = reviewer;
    this.#pods = pods;
    this.#logger = logger;
  }

  async bootstrap(credential: string): Promise<WorkloadBinding | undefined> {
    const token = credential.trim();
    if (!this.#reviewer.accepts(token)) return this.#tokens.bootstrap(token);
    const reviewed = await this.#reviewer.review(token);
    if (!reviewed) return undefined;
    const pod = await this.#boundPod(reviewed);
    if (!pod) return undefined;
    return podBinding(pod);
  }

  /** The live pod the reviewed token is bound to: the same UID, running as the token's service account. */
  async #boundPod(reviewed: ReviewedToken): Promise<MeshPod | undefined> {
    let pod = this.#pods.get(reviewed.namespace, reviewed.podName);
    if (!pod || pod.uid !== reviewed.podUid) pod = await this.#arrival(reviewed);
    const refuse = (why: string) => {
      this.#logger.warn('ServiceAccount token refused', {
        namespace: reviewed.namespace,
        serviceAccount: reviewed.serviceAccount,
        pod: reviewed.podName,
        why,
      });
      return undefined;
    };
    if (!pod.live) return refuse('the pod it is bound to has finished');
    if (pod.serviceAccount !== reviewed.serviceAccount)
      return refuse(`the pod runs as ${pod.serviceAccount}`);
    return pod;
  }

  /** Waits for the pod informer to catch up with a pod the API server knows; 503 if it does not. */
  #arrival(reviewed: ReviewedToken): Promise<MeshPod> {
    return new Promise((resolve, reject) => {
      const check = () => {
        const pod = this.#pods.get(reviewed.namespace, reviewed.podName);
        if (pod?.uid !== reviewed.podUid) return;
        done();
        resolve(pod);
      };
      const timer = setTimeout(() => {
        done();
        reject(
          new UnavailableError(
            `pod ${reviewed.namespace}/${reviewed.podName} is not known to the control plane yet; retry`,
          ),
        );
      }, POD_ARRIVAL_WAIT_MS);
      const unsubscribe = this.#pods.onChange(check);
      const done = () => {
        clearTimeout(timer);
        unsubscribe();
      };
      check();
    });
  }

  async mayRenew(spiffeId: string): Promise<boolean> {
    return this.#pods.hasLive(spiffeId) || this.#tokens.mayRenew(spiffeId);
  }

  async bindingFor(
    workload: string,
    spiffeId: string,
    host: string,
  ): Promise<WorkloadBinding | undefined> {
    const pod = this.#podAt(host, spiffeId, workload);
    if (pod) return podBinding(pod);
    return this.#tokens.bindingFor(workload, spiffeId, host);
  }

  /** The live pod at `host` running as this identity and workload. */
  #podAt(host: string, spiffeId: string, workload: string): MeshPod | undefined {
    const pod = this.#pods.atAddress(host);
    return pod && pod.spiffeId === spiffeId && pod.workload === workload ? pod : undefined;
  }

  stillBound(workload: string, spiffeId: string): boolean {
    return this.#pods.hasLive(spiffeId, workload) || this.#tokens.stillBound(workload, spiffeId);
  }
}
