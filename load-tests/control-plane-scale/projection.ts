/**
 * From measured runs to a 50,000-pod cluster: linear extrapolation (the
 * report says so), the growth seen between runs (an exponent above 1 means
 * the linear line is a floor), and the pod count at which each known limit
 * is reached. Per-edit figures come only from a run in which the control
 * plane answered (nearly) every ack: where most acks failed, the control
 * plane did less work than an edit needs, and its CPU would understate it.
 */
import { CONTROL_PLANE_LIMITS } from '../../common/connection-limits.ts';
import { median } from '../statistics.ts';
import type { ScaleRun } from './run.ts';

export const CLUSTER_PODS = 50_000;
/** The sidecar's deadline on an ack's answer (ControlPlaneClient's ANSWER_TIMEOUT_MS); an ack that misses it is lost, not resent. */
export const ACK_DEADLINE_SECONDS = 10;
/** A run whose edits had at least this share of acks answered can stand for the cost of an edit. */
export const ANSWERED = 0.99;

export interface Limit {
  readonly what: string;
  /** Pods at which it is reached, by linear extrapolation. */
  readonly pods: number;
  readonly why: string;
}

export interface Projection {
  /** The largest run whose sidecars all connected: memory, connections, reconnecting. */
  readonly memoryFrom: number;
  readonly rssMb: number;
  readonly connections: number;
  readonly reconnectSeconds: number | undefined;
  /** One CSR per pod, as real sidecars each request their own, at the rate measured. */
  readonly certificatesSeconds: number;
  /** The largest run with ANSWERED of its acks answered, if any: the cost of an edit. */
  readonly edits:
    | {
        readonly from: number;
        readonly cpuSecondsPerEdit: number;
        readonly lastAckSeconds: number;
        readonly megabytesPerEdit: number;
        /** Control-plane CPU per sidecar per edit, seconds. */
        readonly perSidecarSeconds: number;
      }
    | undefined;
  /** Exponents of growth between the two largest runs that qualify for each (1: linear). */
  readonly growth: {
    readonly memory?: { from: number; to: number; exponent: number };
    readonly cpuPerEdit?: { from: number; to: number; exponent: number };
    readonly reconnect?: { from: number; to: number; exponent: number };
  };
  /** Ascending by pods: the first is what breaks first. */
  readonly limits: readonly Limit[];
}

/** Medians over a run's edits, which the projection and the report share. */
export function headline(run: ScaleRun) {
  const edits = run.edits;
  return {
    lastAckSeconds: median(edits.map((e) => e.ackedMs.max)) / 1000,
    cpuSecondsPerEdit: median(edits.map((e) => e.controlPlaneCpuSeconds)),
    simulatorCpuSecondsPerEdit: median(edits.map((e) => e.simulatorCpuSeconds)),
    bytesPerEdit: median(edits.map((e) => e.traffic.bytes)),
  };
}

/** The share of all its edits' acks that the control plane answered. */
export function answeredShare(run: ScaleRun): number {
  const answered = run.edits.reduce((sum, e) => sum + e.applied, 0);
  return run.edits.length ? answered / (run.edits.length * run.sidecars) : 0;
}

function growthOf(
  runs: readonly ScaleRun[],
  figure: (run: ScaleRun) => number,
): { from: number; to: number; exponent: number } | undefined {
  if (runs.length < 2) return undefined;
  const [a, b] = runs.slice(-2) as [ScaleRun, ScaleRun];
  return {
    from: a.sidecars,
    to: b.sidecars,
    exponent: Math.log(figure(b) / figure(a)) / Math.log(b.sidecars / a.sidecars),
  };
}

/** `heapLimitMb`: V8's default heap limit on this machine (the control plane runs with Node's defaults). */
export function project(runs: readonly ScaleRun[], heapLimitMb: number): Projection | undefined {
  const connected = runs.filter((r) => r.connect.complete).sort((a, b) => a.sidecars - b.sidecars);
  const answered = connected.filter((r) => answeredShare(r) >= ANSWERED);
  const memory = connected.at(-1);
  if (!memory) return undefined;
  const scale = CLUSTER_PODS / memory.sidecars;
  const perSidecarMb = memory.memory.perSidecarKb / 1024;
  const basis = answered.at(-1);
  const figures = basis && headline(basis);
  const edits = basis &&
    figures && {
      from: basis.sidecars,
      cpuSecondsPerEdit: (figures.cpuSecondsPerEdit * CLUSTER_PODS) / basis.sidecars,
      lastAckSeconds: (figures.lastAckSeconds * CLUSTER_PODS) / basis.sidecars,
      megabytesPerEdit: (figures.bytesPerEdit * CLUSTER_PODS) / basis.sidecars / 1048576,
      perSidecarSeconds: figures.cpuSecondsPerEdit / basis.sidecars,
    };
  const handshakeSeconds = CONTROL_PLANE_LIMITS.handshakeTimeoutMs / 1000;
  const limits: Limit[] = [
    {
      what: `default --max-connections (${CONTROL_PLANE_LIMITS.maxConnections})`,
      pods: CONTROL_PLANE_LIMITS.maxConnections / 2,
      why: 'each sidecar holds its watch, and a second connection while it acks; past the cap connections are closed on accept (the flag raises it)',
    },
    {
      what: `open files (the control plane's RLIMIT_NOFILE here, ${memory.openFilesLimit})`,
      pods: memory.openFilesLimit / 2,
      why: 'two sockets per sidecar while it acks',
    },
    {
      what: `V8's default heap limit here (${(heapLimitMb / 1024).toFixed(1)} GB)`,
      pods: (heapLimitMb - memory.memory.baselineMb) / perSidecarMb,
      why: 'if all of the RSS per sidecar were JS heap (part of it is TLS buffers outside the heap, so this comes later)',
    },
    ...(edits
      ? [
          {
            what: `the control plane's ${handshakeSeconds} s TLS handshake timeout`,
            pods: handshakeSeconds / edits.perSidecarSeconds,
            why: `every sidecar acks an edit at once, each on a new mTLS connection (its keep-alive has lapsed when edits are seconds apart); at ${(edits.perSidecarSeconds * 1000).toFixed(2)} ms of control-plane CPU per sidecar per edit, handshakes still queued after ${handshakeSeconds} s are cut and those acks lost`,
          },
          {
            what: `the sidecar's ${ACK_DEADLINE_SECONDS} s ack deadline`,
            pods: ACK_DEADLINE_SECONDS / edits.perSidecarSeconds,
            why: 'likewise for acks answered after the sidecar gave up on them; a lost ack is never resent, so GET /v1/acks shows the old version until the next change',
          },
        ]
      : []),
  ].sort((a, b) => a.pods - b.pods);
  return {
    memoryFrom: memory.sidecars,
    rssMb: memory.memory.baselineMb + perSidecarMb * CLUSTER_PODS,
    connections: 2 * CLUSTER_PODS,
    reconnectSeconds:
      memory.connect.convergedSeconds === undefined
        ? undefined
        : memory.connect.convergedSeconds * scale,
    certificatesSeconds: (memory.certificates.seconds / memory.certificates.count) * CLUSTER_PODS,
    edits,
    growth: {
      memory: growthOf(connected, (r) => r.memory.idleMb - r.memory.baselineMb),
      cpuPerEdit: growthOf(answered, (r) => headline(r).cpuSecondsPerEdit),
      reconnect: growthOf(connected, (r) => r.connect.convergedSeconds!),
    },
    limits,
  };
}
