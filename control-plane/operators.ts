/**
 * The identities that may read the control plane's operator views (GET
 * /v1/acks) when `--operators` does not name them: a service account in the
 * control plane's own namespace, which no workload token binds unless an
 * operator mints one. `postern up` issues its certificate for curl.
 */
export const defaultOperators = (trustDomain: string): string[] => [
  `spiffe://${trustDomain}/ns/postern-system/sa/operator`,
];
