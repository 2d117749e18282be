import { InvalidSpiffeIdError } from './errors.ts';

export const DEFAULT_TRUST_DOMAIN = 'cluster.local';

/** A Kubernetes-style workload identity: spiffe://<trustDomain>/ns/<namespace>/sa/<serviceAccount>. */
export interface WorkloadIdentity {
  readonly trustDomain: string;
  readonly namespace: string;
  readonly serviceAccount: string;
}

// DNS-1123 label (namespaces): at most 63 characters.
const LABEL = /^[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?$/;
// DNS-1123 subdomain (service accounts, trust domains): labels joined by single dots, at most 253 characters.
const SUBDOMAIN = /^(?=.{1,253}$)[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$/;

export function isDnsLabel(value: string): boolean {
  return LABEL.test(value);
}

export function isDnsSubdomain(value: string): boolean {
  return SUBDOMAIN.test(value);
}

export function formatSpiffeId(id: WorkloadIdentity): string {
  return `spiffe://${id.trustDomain}/ns/${id.namespace}/sa/${id.serviceAccount}`;
}

/**
 * What is wrong with `value` as a workload SPIFFE ID, or undefined when it is
 * one. Only the one canonical spelling passes: the lower-case scheme and trust
 * domain, and no port, user info, empty or dot segment, trailing slash,
 * percent-encoding, query or fragment. Each of those would let two strings
 * name one identity, so that a certificate could carry a look-alike of an ID
 * that a policy allows or denies (SPIFFE-ID §2).
 */
function invalidity(value: string): string | undefined {
  if (!value.startsWith('spiffe://')) return 'it must start with spiffe://';
  const rest = value.slice('spiffe://'.length);
  const slash = rest.indexOf('/');
  const trustDomain = slash === -1 ? rest : rest.slice(0, slash);
  if (!SUBDOMAIN.test(trustDomain)) {
    return 'the trust domain must be lower-case letters, digits, dots and dashes';
  }
  const segments = slash === -1 ? [] : rest.slice(slash + 1).split('/');
  if (segments.length !== 4 || segments[0] !== 'ns' || segments[2] !== 'sa') {
    return 'the path must be /ns/<namespace>/sa/<service-account>';
  }
  if (!LABEL.test(segments[1]!)) return 'the namespace is not a DNS label';
  if (!SUBDOMAIN.test(segments[3]!)) return 'the service account is not a DNS subdomain';
  return undefined;
}

/** Whether `value` is a workload SPIFFE ID in its canonical form; for callers that must not throw. */
export function isSpiffeId(value: string): boolean {
  return invalidity(value) === undefined;
}

/** Parses a workload SPIFFE ID; throws InvalidSpiffeIdError naming what is wrong. */
export function parseSpiffeId(value: string): WorkloadIdentity {
  const why = invalidity(value);
  if (why) throw new InvalidSpiffeIdError(value, why);
  const [trustDomain, , namespace, , serviceAccount] = value
    .slice('spiffe://'.length)
    .split('/') as [string, string, string, string, string];
  return { trustDomain, namespace, serviceAccount };
}
