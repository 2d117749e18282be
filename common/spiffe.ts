import { InvalidSpiffeIdError } from './errors.ts';

export const DEFAULT_TRUST_DOMAIN = 'cluster.local';

/** A Kubernetes-style workload identity: spiffe://<trustDomain>/ns/<namespace>/sa/<serviceAccount>. */
export interface WorkloadIdentity {
  readonly trustDomain: string;
  readonly namespace: string;
  readonly serviceAccount: string;
}

// DNS-1123 label (namespaces, service accounts) and a trust domain made of such labels.
const LABEL = /^[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?$/;
// Service-account names are DNS subdomains (dots allowed).
const SUBDOMAIN = /^[a-z0-9]([-a-z0-9.]{0,251}[a-z0-9])?$/;
const TRUST_DOMAIN = /^[a-z0-9]([-a-z0-9.]{0,251}[a-z0-9])?$/;

export function isDnsLabel(value: string): boolean {
  return LABEL.test(value);
}

export function isDnsSubdomain(value: string): boolean {
  return SUBDOMAIN.test(value);
}

export function formatSpiffeId(id: WorkloadIdentity): string {
  return `spiffe://${id.trustDomain}/ns/${id.namespace}/sa/${id.serviceAccount}`;
}

/** Parses a workload SPIFFE ID; throws InvalidSpiffeIdError naming what is wrong. */
export function parseSpiffeId(value: string): WorkloadIdentity {
  if (!value.startsWith('spiffe://')) {
    throw new InvalidSpiffeIdError(value, 'it must start with spiffe://');
  }
  const rest = value.slice('spiffe://'.length);
  const slash = rest.indexOf('/');
  const trustDomain = slash === -1 ? rest : rest.slice(0, slash);
  if (!TRUST_DOMAIN.test(trustDomain)) {
    throw new InvalidSpiffeIdError(
      value,
      'the trust domain must be lower-case letters, digits, dots and dashes',
    );
  }
  const segments = slash === -1 ? [] : rest.slice(slash + 1).split('/');
  if (segments.length !== 4 || segments[0] !== 'ns' || segments[2] !== 'sa') {
    throw new InvalidSpiffeIdError(value, 'the path must be /ns/<namespace>/sa/<service-account>');
  }
  const [, namespace, , serviceAccount] = segments as [string, string, string, string];
  if (!LABEL.test(namespace))
    throw new InvalidSpiffeIdError(value, 'the namespace is not a DNS label');
  if (!SUBDOMAIN.test(serviceAccount)) {
    throw new InvalidSpiffeIdError(value, 'the service account is not a DNS subdomain');
  }
  return { trustDomain, namespace, serviceAccount };
}
