/**
 * Wire formats shared by the control plane and the sidecar (DESIGN.md,
 * "Control plane API"). Both sides import these; neither copies them.
 */
import { createHash } from 'node:crypto';
import type { RoutePolicy } from './policy/schema.ts';

/** What a workload gets when no RoutePolicy selects it. */
export type MeshDefault = 'deny' | 'allow-authenticated';

/** One inbound endpoint of a mesh service: where its sidecar listens and who it proves to be. */
export interface RegistryEntry {
  readonly service: string;
  readonly namespace: string;
  readonly address: string;
  readonly spiffeId: string;
}

/**
 * An identity's bootstrap tokens were revoked: its certificates issued until
 * then stay cryptographically valid until they expire, so peers refuse them
 * by issue time. Entries leave snapshots once every such certificate has
 * expired.
 */
export interface Revocation {
  readonly spiffeId: string;
  /** Certificates of `spiffeId` whose notBefore is at or before this instant (RFC 3339) are refused. */
  readonly notBeforeUpTo: string;
}

export interface Snapshot {
  /** `<epoch>.<counter>`: the epoch grows with every control-plane start, so versions keep increasing across restarts. */
  readonly version: string;
  /** sha256 of the content (everything but version), hex. */
  readonly hash: string;
  readonly meshDefault: MeshDefault;
  /** The validated RoutePolicies that select this workload; the sidecar compiles them. */
  readonly policies: readonly RoutePolicy[];
  readonly registry: readonly RegistryEntry[];
  /** Revoked identities whose older certificates peers must refuse (absent from older control planes: none). */
  readonly revoked?: readonly Revocation[];
}

export type SnapshotContent = Omit<Snapshot, 'version' | 'hash'>;

/** Content hash: key order fixed by construction (we build these objects), so JSON is canonical enough. */
export function hashSnapshotContent(content: SnapshotContent): string {
  return createHash('sha256')
    .update(
      JSON.stringify([content.meshDefault, content.policies, content.registry, content.revoked]),
    )
    .digest('hex');
}

/** POST /v1/certificates body. `token` only on the first request; renewals authenticate with the current SVID. */
export interface CertificateRequest {
  readonly csr: string;
  readonly token?: string;
}

export interface CertificateResponse {
  /** PEM: the SVID first, then any intermediates. */
  readonly certificateChain: string;
  /** PEM roots to trust for peers. */
  readonly trustBundle: string;
  readonly spiffeId: string;
  readonly notAfter: string;
}

/** A rejection reason in an ack is an error message, not a document: longer ones are cut to this. */
export const MAX_ACK_REASON_CHARS = 1024;

/** POST /v1/acks body. */
export interface SnapshotAck {
  readonly workload: string;
  readonly version: string;
  readonly hash: string;
  readonly status: 'applied' | 'rejected';
  readonly reason?: string;
  /** The sidecar's advertised address: tells apart the pods of one workload. */
  readonly address?: string;
}

/** Labels on the wire and on the command line: k=v,k2=v2. */
export function parseLabels(text: string): Record<string, string> {
  const labels: Record<string, string> = {};
  for (const pair of text.split(',')) {
    if (!pair.trim()) continue;
    const eq = pair.indexOf('=');
    if (eq <= 0) throw new Error(`label ${JSON.stringify(pair)} is not key=value`);
    labels[pair.slice(0, eq).trim()] = pair.slice(eq + 1).trim();
  }
  return labels;
}

export function formatLabels(labels: Record<string, string>): string {
  return Object.entries(labels)
    .map(([k, v]) => `${k}=${v}`)
    .join(',');
}
