import type { IncomingMessage, ServerResponse } from 'node:http';
import type { Logger } from '../../common/log.ts';
import type { PrincipalMatcher } from '../../common/policy/principals.ts';
import type { BlockList } from '../detection/blocks.ts';
import type { DetectionInput } from '../detection/input.ts';
import type { LiveDetection } from '../detection/live-detection.ts';
import type { MeshAuthority } from '../mesh-authority.ts';
import type { RootRotation } from '../root-rotation.ts';
import type { SnapshotHub } from '../snapshot-hub.ts';
import type { WorkloadCredentials } from '../workload-credentials.ts';

/** What the API's handlers share: one per control plane. */
export interface ApiContext {
  /** Signs with the root that signs now; its `bundlePem` is the bundle of the moment. */
  readonly ca: MeshAuthority;
  readonly rotation: RootRotation;
  /** Who may bootstrap, renew and register (bootstrap tokens; in a cluster, pods too). */
  readonly credentials: WorkloadCredentials;
  readonly hub: SnapshotHub;
  readonly logger: Logger;
  readonly svidTtlMs: number;
  /**
   * For a revoked identity (`token revoke`), the last notBefore (epoch ms)
   * its refused certificates can have; as of the last token lookup.
   */
  readonly revokedUpTo: (spiffeId: string) => number | undefined;
  /** Identities that may read operator views (GET /v1/acks). */
  readonly operators: PrincipalMatcher;
  /** Interval of keep-alive comments on idle snapshot streams. */
  readonly keepAliveMs: number;
  /** A snapshot stream whose reader has taken nothing for this long is cut. */
  readonly stalledStreamMs: number;
  /** Usage reports in, alerts out (POST /v1/usage, GET /v1/alerts). */
  readonly detection: LiveDetection;
  /** Callers blocked after alerts (GET, DELETE /v1/blocks). */
  readonly blocks: BlockList;
  /** Where reports and clears go: this replica's detection, or every replica's through Redis. */
  readonly detectionInput: DetectionInput;
}

export type Handler = (req: IncomingMessage, res: ServerResponse, url: URL) => Promise<void>;

/** Routes of one API resource, keyed `METHOD /path`. */
export type Routes = Record<string, Handler>;
