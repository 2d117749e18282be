/**
 * Wire formats shared by the control plane and the sidecar (DESIGN.md,
 * "Control plane API"). Both sides import these; neither copies them.
 */
import { createHash } from 'node:crypto';
import type { HttpRoute } from './policy/httproute-schema.ts';
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
  /**
   * PEM: every root a peer's certificate may chain to, as of this snapshot
   * (two while the mesh root rotates). Sidecars verify peers and the control
   * plane with it from then on. Absent from older control planes: the bundle
   * of the certificate response stands.
   */
  readonly trustBundle?: string;
  /**
   * For the global rate limits of the policies in this snapshot; absent when
   * they have none. `redis` is the control plane's --redis (absent without
   * one: each replica enforces its share); `replicas` is how many sidecars of
   * this workload are registered, which sizes each one's local share.
   */
  readonly rateLimit?: GlobalRateLimitConfig;
  /**
   * Callers an exfiltration alert blocked on routes of this workload (the
   * route's policy says `exfiltration.action: block`), refused until an
   * operator clears them. Absent when none.
   */
  readonly blocked?: readonly Block[];
  /**
   * The Gateway API HTTPRoutes whose parentRefs name this workload (it runs
   * as `postern gateway`); absent for every other workload.
   */
  readonly httpRoutes?: readonly HttpRoute[];
}

/** One caller refused on one route of a workload after an exfiltration alert. */
export interface Block {
  readonly principal: string;
  /** The route's name (usage records and alerts name routes so). */
  readonly route: string;
  /** When the alert blocked it (RFC 3339). */
  readonly since: string;
  /** The detector whose alert did. */
  readonly detector: string;
}

export function isBlockList(value: unknown): value is Block[] {
  return (
    Array.isArray(value) &&
    value.every(
      (b: Partial<Block> | null) =>
        typeof b?.principal === 'string' &&
        typeof b.route === 'string' &&
        typeof b.since === 'string' &&
        typeof b.detector === 'string',
    )
  );
}

export interface GlobalRateLimitConfig {
  readonly redis?: string;
  readonly replicas: number;
  /**
   * What this mesh's Redis keys start with (`postern:<mesh id>:`), so that
   * meshes sharing a Redis count apart; absent from older control planes
   * (then `postern:`).
   */
  readonly keyPrefix?: string;
}

/** Whether `value` is a GlobalRateLimitConfig a sidecar can use. */
export function isGlobalRateLimitConfig(value: unknown): value is GlobalRateLimitConfig {
  const config = value as Partial<GlobalRateLimitConfig> | null;
  if (typeof config !== 'object' || config === null) return false;
  if (!Number.isInteger(config.replicas) || config.replicas! < 1) return false;
  if (
    config.keyPrefix !== undefined &&
    (typeof config.keyPrefix !== 'string' || !/^[\w:.-]{1,128}$/.test(config.keyPrefix))
  )
    return false;
  if (config.redis === undefined) return true;
  return typeof config.redis === 'string' && /^rediss?:\/\/[^\s]+$/.test(config.redis);
}

export type SnapshotContent = Omit<Snapshot, 'version' | 'hash'>;

/** Content hash: key order fixed by construction (we build these objects), so JSON is canonical enough. */
export function hashSnapshotContent(content: SnapshotContent): string {
  return createHash('sha256')
    .update(
      JSON.stringify([
        content.meshDefault,
        content.policies,
        content.registry,
        content.revoked,
        content.trustBundle,
        content.rateLimit,
        content.blocked,
        content.httpRoutes,
      ]),
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
  /**
   * `trustBundleId` of the bundle the sidecar verifies peers with once it
   * handled this snapshot: how the control plane knows a new root has
   * reached it before that root signs anything.
   */
  readonly trustBundle?: string;
}

/** Names a trust bundle in acks and status: sha256 (hex) of its PEM text. */
export function trustBundleId(bundlePem: string): string {
  return createHash('sha256').update(bundlePem).digest('hex');
}

/** One root of the mesh trust bundle, as `GET /v1/trust-bundle/rotation` shows it. */
export interface RootSummary {
  /** signing: signs certificates now; next: trusted, signs once the rotation switches; retiring: trusted until `retireAt`. */
  readonly role: 'signing' | 'next' | 'retiring';
  readonly subject: string;
  /** SHA-256 of the certificate, colon-separated hex (as openssl prints it). */
  readonly fingerprint: string;
  readonly notAfter: string;
}

/** A sidecar that has not confirmed the current trust bundle yet. */
export interface UnconfirmedSidecar {
  readonly workload: string;
  readonly namespace: string;
  readonly spiffeId: string;
  readonly address?: string;
  /** The bundle its last ack named, if it acked at all. */
  readonly trustBundle?: string;
}

/** `GET /v1/trust-bundle/rotation` (and the answer to starting or switching one): where the mesh root rotation stands. */
export interface RotationStatus {
  readonly phase: 'steady' | 'prepared' | 'active';
  /** `trustBundleId` of the bundle sidecars are sent now. */
  readonly trustBundle: string;
  readonly roots: readonly RootSummary[];
  readonly startedAt?: string;
  /** prepared: the new root signs once `waitingFor` is empty, and not before this. */
  readonly activatesNoSoonerThan?: string;
  readonly waitingFor?: readonly UnconfirmedSidecar[];
  readonly activatedAt?: string;
  /** active: when the old root leaves the bundle (its last certificate has expired). */
  readonly retireAt?: string;
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
