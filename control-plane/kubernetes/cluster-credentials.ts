import type { Logger } from '../../common/log.ts';
import type { TokenStore } from '../tokens.ts';
import {
  tokenCredentials,
  type WorkloadBinding,
  type WorkloadCredentials,
} from '../workload-credentials.ts';
import { comesFrom, type MeshPod, type PodIndex } from './pod-index.ts';
import type { ReviewedToken, TokenReviewer } from './token-review.ts';

/**
 * How long a snapshot watch waits for the pod informer to show the pod at
 * the sidecar's IP: a sidecar opens its watch within a second of its pod
 * getting its IP, and the watch event may trail it.
 */
const POD_ARRIVAL_WAIT_MS = 3_000;
/** Watches waiting so at once; beyond this they are refused at once (the sidecar retries). */
const MAX_WAITING = 256;

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
 * account and pod, and the request must come from that pod's IP (a token
 * copied elsewhere buys nothing). The identity issued is that service
 * account's; the workload and labels are the pod's own, whatever the CSR or
 * the sidecar says. An SVID renews, and a snapshot watch registers, only
 * from the IP of a live pod of its identity. Operator-minted bootstrap
 * tokens keep working beside them (a VM, a gateway outside the cluster).
 */
export class ClusterCredentials implements WorkloadCredentials {
  readonly #tokens: WorkloadCredentials;
  readonly #reviewer: Pick<TokenReviewer, 'accepts' | 'review'>;
  readonly #pods: Pick<PodIndex, 'get' | 'fetch' | 'liveAt' | 'hasLive' | 'onChange'>;
  readonly #logger: Logger;
  #waiting = 0;

  constructor(
    tokens: TokenStore,
    reviewer: Pick<TokenReviewer, 'accepts' | 'review'>,
    pods: Pick<PodIndex, 'get' | 'fetch' | 'liveAt' | 'hasLive' | 'onChange'>,
    logger: Logger,
  ) {
    this.#tokens = tokenCredentials(tokens);
    this.#reviewer = reviewer;
    this.#pods = pods;
    this.#logger = logger;
  }

  async bootstrap(credential: string, from: string): Promise<WorkloadBinding | undefined> {
    const token = credential.trim();
    if (!this.#reviewer.accepts(token)) return this.#tokens.bootstrap(token, from);
    const reviewed = await this.#reviewer.review(token);
    if (!reviewed) return undefined;
    const pod = await this.#boundPod(reviewed);
    const refuse = (why: string) => {
      this.#logger.warn('ServiceAccount token refused', {
        namespace: reviewed.namespace,
        serviceAccount: reviewed.serviceAccount,
        pod: reviewed.podName,
        from,
        why,
      });
      return undefined;
    };
    if (!pod) return refuse('the pod it is bound to no longer exists');
    if (!pod.live) return refuse('the pod it is bound to has finished');
    if (pod.serviceAccount !== reviewed.serviceAccount)
      return refuse(`the pod runs as ${pod.serviceAccount}`);
    if (!comesFrom(pod, from))
      return refuse(`it was sent from ${from}, not from the pod's IP (${pod.ips.join(', ')})`);
    return podBinding(pod);
  }

  /**
   * The pod the reviewed token is bound to, with the same UID: from the
   * informer, else from the API (the informer may not have heard of a pod
   * created a moment ago, or of one deleted a moment ago).
   */
  async #boundPod(reviewed: ReviewedToken): Promise<MeshPod | undefined> {
    const known = this.#pods.get(reviewed.namespace, reviewed.podName);
    if (known?.uid === reviewed.podUid) return known;
    const current = await this.#pods.fetch(reviewed.namespace, reviewed.podName);
    return current?.uid === reviewed.podUid ? current : undefined;
  }

  async mayRenew(spiffeId: string, from: string): Promise<boolean> {
    return (
      this.#pods.liveAt(from, spiffeId) !== undefined ||
      (await this.#tokens.mayRenew(spiffeId, from))
    );
  }

  async bindingFor(
    workload: string,
    spiffeId: string,
    host: string,
  ): Promise<WorkloadBinding | undefined> {
    const pod =
      this.#pods.liveAt(host, spiffeId, workload) ??
      (await this.#arrival(host, spiffeId, workload));
    if (pod) return podBinding(pod);
    return this.#tokens.bindingFor(workload, spiffeId, host);
  }

  /** Waits a moment for the informer to show a live pod of this identity at `host`. */
  async #arrival(host: string, spiffeId: string, workload: string): Promise<MeshPod | undefined> {
    // Not a pod of the cluster at all (a VM with a token): nothing to wait for.
    if (!this.#pods.hasLive(spiffeId, workload) || this.#waiting >= MAX_WAITING) return undefined;
    this.#waiting++;
    try {
      return await new Promise<MeshPod | undefined>((resolve) => {
        const check = () => {
          const pod = this.#pods.liveAt(host, spiffeId, workload);
          if (pod) done(pod);
        };
        const timer = setTimeout(() => done(undefined), POD_ARRIVAL_WAIT_MS);
        const unsubscribe = this.#pods.onChange(check);
        const done = (pod: MeshPod | undefined) => {
          clearTimeout(timer);
          unsubscribe();
          resolve(pod);
        };
      });
    } finally {
      this.#waiting--;
    }
  }

  stillBound(workload: string, spiffeId: string): boolean {
    return this.#pods.hasLive(spiffeId, workload) || this.#tokens.stillBound(workload, spiffeId);
  }
}
