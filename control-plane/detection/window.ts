/**
 * Window assembly: the reports of every replica for one window, merged into
 * what each caller did to each workload's route, whichever pods served it
 * (baselines are per identity, never per pod, so scaling and rollouts change
 * nothing), and what each workload sent outside the mesh.
 */
import { UNAUTHENTICATED_CALLER, type UsageReport } from '../../common/usage.ts';

export interface CallerUsage {
  /** `namespace/workload` called. */
  readonly workload: string;
  readonly principal: string;
  readonly route: string;
  requests: number;
  requestBytes: number;
  responseBytes: number;
  /** Distinct resource ids of a templated route, summed over the replicas that saw them. */
  distinctResources: number;
  /** A sample of them (what the reports sampled, merged). */
  readonly resourceIds: Set<string>;
  /** Response bytes per reporting pod: how the caller spread its volume. */
  readonly byPod: Map<string, number>;
  /** Addresses the caller connected from (what the reports sampled, merged). */
  readonly addresses: Set<string>;
  /** Trace ids of some of its requests, for the evidence. */
  readonly traceIds: Set<string>;
}

export interface EgressUsage {
  /** `namespace/workload` sending. */
  readonly source: string;
  /** host:port outside the mesh. */
  readonly destination: string;
  requests: number;
  requestBytes: number;
  responseBytes: number;
}

export interface WindowUsage {
  readonly startMs: number;
  readonly seconds: number;
  readonly callers: Map<string, CallerUsage>;
  readonly egress: Map<string, EgressUsage>;
  /** Workloads that reported this window. */
  readonly workloads: Set<string>;
  /** Where each reporting identity runs: SPIFFE ID → pod addresses (from reports that state them). */
  readonly pods: Map<string, Set<string>>;
}

export const callerKey = (workload: string, principal: string, route: string) =>
  `${workload}\n${principal}\n${route}`;
export const egressKey = (source: string, destination: string) => `${source}\n${destination}`;

const RESOURCE_SAMPLE = 64;
const ADDRESS_SAMPLE = 16;
const TRACE_SAMPLE = 8;

function addSampled<T>(into: Set<T>, values: readonly T[] | undefined, max: number): void {
  if (!values) return;
  for (const value of values) {
    if (into.size >= max) return;
    into.add(value);
  }
}

/** Merges reports into windows; a window closes once reports have moved past it by the allowed lateness. */
export class WindowAssembler {
  readonly #open = new Map<number, WindowUsage>();

  add(report: UsageReport): void {
    const startMs = Date.parse(report.window.start);
    let window = this.#open.get(startMs);
    if (!window) {
      window = {
        startMs,
        seconds: report.window.seconds,
        callers: new Map(),
        egress: new Map(),
        workloads: new Set(),
        pods: new Map(),
      };
      this.#open.set(startMs, window);
    }
    const workload = `${report.source.namespace}/${report.source.workload}`;
    const pod = report.source.pod ?? workload;
    window.workloads.add(workload);
    const { principal: sourceId, address: sourceAddress } = report.source;
    if (sourceId && sourceAddress) {
      const addresses = window.pods.get(sourceId) ?? new Set();
      addresses.add(sourceAddress);
      window.pods.set(sourceId, addresses);
    }
    for (const entry of report.entries) {
      if (entry.direction === 'outbound') {
        const key = egressKey(workload, entry.destination);
        const usage = window.egress.get(key) ?? {
          source: workload,
          destination: entry.destination,
          requests: 0,
          requestBytes: 0,
          responseBytes: 0,
        };
        usage.requests += entry.requests;
        usage.requestBytes += entry.requestBytes;
        usage.responseBytes += entry.responseBytes;
        window.egress.set(key, usage);
        continue;
      }
      const principal = entry.principal ?? UNAUTHENTICATED_CALLER;
      const key = callerKey(workload, principal, entry.route);
      let usage = window.callers.get(key);
      if (!usage) {
        usage = {
          workload,
          principal,
          route: entry.route,
          requests: 0,
          requestBytes: 0,
          responseBytes: 0,
          distinctResources: 0,
          resourceIds: new Set(),
          byPod: new Map(),
          addresses: new Set(),
          traceIds: new Set(),
        };
        window.callers.set(key, usage);
      }
      usage.requests += entry.requests;
      usage.requestBytes += entry.requestBytes;
      usage.responseBytes += entry.responseBytes;
      usage.distinctResources += entry.distinctResources ?? 0;
      addSampled(usage.resourceIds, entry.resourceIds, RESOURCE_SAMPLE);
      addSampled(usage.addresses, entry.addresses, ADDRESS_SAMPLE);
      addSampled(usage.traceIds, entry.traceIds, TRACE_SAMPLE);
      usage.byPod.set(pod, (usage.byPod.get(pod) ?? 0) + entry.responseBytes);
    }
  }

  /** Windows that started before `beforeMs` (or that `due` says are over), oldest first, removed from the open set. */
  close(
    beforeMs = Number.POSITIVE_INFINITY,
    due: (window: WindowUsage) => boolean = () => false,
  ): WindowUsage[] {
    const closed = [...this.#open.values()]
      .filter((window) => window.startMs < beforeMs || due(window))
      .sort((a, b) => a.startMs - b.startMs);
    for (const window of closed) this.#open.delete(window.startMs);
    return closed;
  }
}
