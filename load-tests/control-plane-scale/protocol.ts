/**
 * What the harness (control-plane-scale.ts) and the simulator process say
 * to each other over Node's IPC channel. Times are epoch milliseconds with
 * sub-millisecond precision (`now()`), comparable across the two processes
 * because both read the same system clock.
 */

export const now = () => performance.timeOrigin + performance.now();

export interface SimulatorConfig {
  readonly controlPlane: string;
  readonly caFile: string;
  /** Holds `svc-<i>.token`, each service's bootstrap token. */
  readonly tokensDir: string;
  readonly sidecars: number;
  /** Sidecar i advertises 127.0.0.1:(firstPort + i). */
  readonly firstPort: number;
}

export type Command =
  /** One certificate per service identity, through the real CSR endpoint. */
  | { readonly type: 'certificates' }
  /** Every sidecar opens its watch at once, as after a control-plane restart. */
  | { readonly type: 'connect'; readonly timeoutMs: number }
  /** Remember what each sidecar has applied, before a save. */
  | { readonly type: 'mark' }
  /** Wait until every sidecar has acked (or failed to ack) a snapshot other than the one it held at the mark. */
  | { readonly type: 'await-edit'; readonly savedAt: number; readonly timeoutMs: number };

/** Counters over a phase. */
export interface Traffic {
  /** Snapshot events received. */
  readonly snapshots: number;
  /** SSE bytes received (snapshots and keep-alives, as the control plane wrote them before TLS). */
  readonly bytes: number;
  /** Watches opened again after the first (the stream was cut or refused). */
  readonly reconnects: number;
  /** Watch requests that failed or were refused. */
  readonly watchFailures: number;
  readonly ackFailures: number;
  /** Failed acks by what the client saw (see ACK_FAILURES in fleet.ts). */
  readonly ackFailureReasons: Readonly<Record<string, number>>;
}

export type Reply =
  | { readonly type: 'ready' }
  /** A command threw; the stack. */
  | { readonly type: 'failed'; readonly message: string }
  | { readonly type: 'certificates'; readonly count: number; readonly ms: number }
  | {
      readonly type: 'connected';
      readonly complete: boolean;
      /** From the command until every sidecar received its first snapshot. */
      readonly openedMs: number | undefined;
      /** ... until every sidecar applied a snapshot holding its whole registry. */
      readonly convergedMs: number | undefined;
      readonly opened: number;
      readonly converged: number;
      readonly traffic: Traffic;
    }
  | { readonly type: 'marked' }
  | {
      readonly type: 'edit';
      readonly complete: boolean;
      /** Per sidecar whose "applied" ack was answered: save to the new snapshot's arrival, ms. */
      readonly receivedMs: readonly number[];
      /** ... save to the control plane's answer to the ack, ms. */
      readonly ackedMs: readonly number[];
      /** Those sidecars' applied hash by advertised address, to check against the control plane's record. */
      readonly applied: Readonly<Record<string, string>>;
      /** Snapshots the sidecars rejected (should be none). */
      readonly rejected: number;
      readonly traffic: Traffic;
    };
