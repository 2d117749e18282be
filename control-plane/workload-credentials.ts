import { labelsOf, type TokenStore } from './tokens.ts';

/** A workload identity as a credential proved it, with what it is allowed to register as. */
export interface WorkloadBinding {
  readonly workload: string;
  readonly namespace: string;
  readonly serviceAccount: string;
  readonly spiffeId: string;
  /** The labels that decide which RoutePolicies the workload receives. */
  readonly labels: Readonly<Record<string, string>>;
  /**
   * What proved it: a bootstrap token minted by an operator (its labels were
   * bound with it, and a sidecar asking for others is told so), or a pod
   * (a projected ServiceAccount token reviewed by the Kubernetes API; the
   * labels are the pod's own as the API says now).
   */
  readonly via: 'bootstrap-token' | 'pod';
}

/**
 * Who may get a certificate, renew it, and register a workload: the
 * certificate and snapshot routes ask this, never the request. Locally a
 * TokenStore answers (tokenCredentials); in a cluster the Kubernetes API
 * does too (kubernetes/cluster-credentials.ts).
 */
export interface WorkloadCredentials {
  /**
   * The binding a first-certificate credential proves, sent from `from`
   * (the caller's address), or undefined when it proves nothing. Throws
   * UnavailableError when what decides cannot answer now (the sidecar
   * retries).
   */
  bootstrap(credential: string, from: string): Promise<WorkloadBinding | undefined>;
  /** Whether an SVID of `spiffeId` may still renew itself from `from`. */
  mayRenew(spiffeId: string, from: string): Promise<boolean>;
  /**
   * The binding a snapshot watch of `workload` as `spiffeId` registers
   * under; `host` is where the sidecar runs (the address it advertises,
   * verified to be where it connects from, else where it connects from).
   */
  bindingFor(
    workload: string,
    spiffeId: string,
    host: string,
  ): Promise<WorkloadBinding | undefined>;
  /** Whether a watch registered so is still backed by a credential (from what was last loaded). */
  stillBound(workload: string, spiffeId: string): boolean;
}

const fromToken = (binding: ReturnType<TokenStore['bindingNow']>): WorkloadBinding | undefined =>
  binding && {
    workload: binding.workload,
    namespace: binding.namespace,
    serviceAccount: binding.serviceAccount,
    spiffeId: binding.spiffeId,
    labels: labelsOf(binding),
    via: 'bootstrap-token',
  };

/** Bootstrap tokens alone (`postern token create`): every mode has them. */
export function tokenCredentials(tokens: TokenStore): WorkloadCredentials {
  return {
    bootstrap: async (credential) => fromToken(await tokens.verify(credential)),
    mayRenew: (spiffeId) => tokens.isBound(spiffeId),
    bindingFor: async (workload, spiffeId) =>
      fromToken(await tokens.bindingFor(workload, spiffeId)),
    stillBound: (workload, spiffeId) => tokens.bindingNow(workload, spiffeId) !== undefined,
  };
}
