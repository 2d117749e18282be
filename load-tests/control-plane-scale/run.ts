/**
 * One measurement at N sidecars: a control plane process over the mesh's
 * policy folder, the simulator process holding the N sidecars, then the
 * phases (certificates, connect, idle, edits) with the control plane's CPU
 * and RSS read from /proc around each.
 */
import { mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { sleep } from '../../common/backoff.ts';
import { CONTROL_PLANE_LIMITS } from '../../common/connection-limits.ts';
import { cpuSeconds, openFilesLimit, rssMb } from '../bench/measure.ts';
import { type BenchControlPlane, startBenchControlPlane } from '../control-plane-process.ts';
import { percentile } from '../statistics.ts';
import { listenOverflows, machineBusySeconds } from './machine.ts';
import {
  NAMESPACE,
  PLATFORM_FILE,
  platformPolicy,
  REPLICAS,
  registrySize,
  serviceName,
  servicesFor,
  writeMeshPolicies,
} from './mesh.ts';
import { now, type Traffic } from './protocol.ts';
import { type Simulator, startSimulator } from './simulator-process.ts';

export interface RunOptions {
  readonly edits: number;
  /** Quiet time before each edit. */
  readonly gapMs: number;
  /** Pin the control plane to core 0 and the simulator to core 1. */
  readonly pin: boolean;
  /** Keep the work folder (the processes' logs) even when the run succeeds. */
  readonly keep?: boolean;
}

export interface Percentiles {
  readonly p50: number;
  readonly p99: number;
  readonly max: number;
}

export interface EditResult {
  readonly edit: number;
  /** Sidecars that applied the edit's snapshot and had their ack answered; the rest rejected it or their ack failed (traffic.ackFailures). */
  readonly applied: number;
  /** Of those, the acks the control plane's GET /v1/acks shows with the same hash. */
  readonly recorded: number;
  readonly rejected: number;
  /** Save to the new snapshot's arrival at each sidecar. */
  readonly receivedMs: Percentiles;
  /** Save to the control plane's answer to each sidecar's ack. */
  readonly ackedMs: Percentiles;
  /** The control plane's user+system CPU from the save to the last ack. */
  readonly controlPlaneCpuSeconds: number;
  /** The simulator's, likewise: near the wall time, it is the bottleneck and the latencies are upper bounds. */
  readonly simulatorCpuSeconds: number;
  /** Connections dropped at a full accept queue meanwhile (machine-wide; see machine.ts). */
  readonly listenOverflows: number;
  readonly traffic: Traffic;
}

export interface ScaleRun {
  readonly sidecars: number;
  readonly services: number;
  readonly replicas: number;
  readonly registryPerSidecar: number;
  /** --max-connections given to the control plane. */
  readonly maxConnections: number;
  /** The control plane's RLIMIT_NOFILE. */
  readonly openFilesLimit: number;
  readonly pinned: boolean;
  readonly gapMs: number;
  readonly certificates: { readonly count: number; readonly seconds: number };
  readonly connect: {
    /** Whether every registry was whole by the deadline (if not, no edits were measured). */
    readonly complete: boolean;
    readonly deadlineSeconds: number;
    readonly openedSeconds: number | undefined;
    readonly convergedSeconds: number | undefined;
    readonly opened: number;
    readonly converged: number;
    readonly controlPlaneCpuSeconds: number;
    readonly simulatorCpuSeconds: number;
    readonly listenOverflows: number;
    readonly traffic: Traffic;
  };
  readonly memory: {
    /** Control plane RSS with its policies and tokens loaded and no sidecar connected. */
    readonly baselineMb: number;
    /** ... with N sidecars connected and idle. */
    readonly idleMb: number;
    readonly afterEditsMb: number;
    /** (idle - baseline) / N */
    readonly perSidecarKb: number;
    readonly simulatorMb: number;
  };
  readonly edits: readonly EditResult[];
  /** From the simulator's start to the last edit: wall time, and the CPU of every other process on the machine. */
  readonly wallSeconds: number;
  readonly otherCpuSeconds: number;
}

/** Counters read around a phase. */
interface Readings {
  readonly controlPlane: number;
  readonly simulator: number;
  readonly listenOverflows: number;
}

/** Wait after token minting (the control plane reloads its token index) and after connecting, before RSS is read. */
const SETTLE_MS = 3_000;

const summarize = (values: readonly number[]): Percentiles => {
  const sorted = [...values].sort((a, b) => a - b);
  return sorted.length
    ? { p50: percentile(sorted, 50), p99: percentile(sorted, 99), max: sorted.at(-1)! }
    : { p50: Number.NaN, p99: Number.NaN, max: Number.NaN };
};

/** E saves of the platform policy, each after `gapMs` of quiet, each waited for until every sidecar has acked it. */
async function measureEdits(
  options: RunOptions,
  context: {
    sidecars: number;
    policiesDir: string;
    simulator: Simulator;
    controlPlane: BenchControlPlane;
    cpu: () => Promise<Readings>;
  },
): Promise<EditResult[]> {
  const { sidecars, policiesDir, simulator, controlPlane, cpu } = context;
  const edits: EditResult[] = [];
  for (let edit = 1; edit <= options.edits; edit++) {
    await sleep(options.gapMs);
    await simulator.ask({ type: 'mark' });
    const before = await cpu();
    await writeFile(join(policiesDir, PLATFORM_FILE), platformPolicy(edit));
    const savedAt = now();
    const result = await simulator.ask({
      type: 'await-edit',
      savedAt,
      timeoutMs: Math.max(30_000, 20 * sidecars),
    });
    const after = await cpu();
    const recorded = (await controlPlane.acks()).filter(
      (ack) => ack.status === 'applied' && result.applied[ack.address ?? ''] === ack.hash,
    ).length;
    edits.push({
      edit,
      applied: result.ackedMs.length,
      recorded,
      rejected: result.rejected,
      receivedMs: summarize(result.receivedMs),
      ackedMs: summarize(result.ackedMs),
      controlPlaneCpuSeconds: after.controlPlane - before.controlPlane,
      simulatorCpuSeconds: after.simulator - before.simulator,
      listenOverflows: after.listenOverflows - before.listenOverflows,
      traffic: result.traffic,
    });
  }
  return edits;
}

export async function measureScale(sidecars: number, options: RunOptions): Promise<ScaleRun> {
  const services = servicesFor(sidecars);
  const dir = await mkdtemp(join(tmpdir(), 'postern-control-plane-scale-'));
  const policiesDir = join(dir, 'policies');
  const tokensDir = join(dir, 'tokens');
  await mkdir(policiesDir);
  await mkdir(tokensDir);
  await writeMeshPolicies(policiesDir, services);
  // A sidecar holds its watch and, while it acks, a second connection (its
  // client pools per origin and the stream keeps one busy): the default cap
  // would refuse connections past about 2,000 sidecars.
  const maxConnections = Math.max(CONTROL_PLANE_LIMITS.maxConnections, 2 * sidecars + 64);
  const controlPlane = await startBenchControlPlane(dir, {
    policiesDir,
    ...(options.pin ? { cpu: 0 } : {}),
    env: { POSTERN_MAX_CONNECTIONS: String(maxConnections) },
  });
  const pid = controlPlane.child.process.pid!;
  let finished = false;
  try {
    for (let service = 0; service < services; service++) {
      const name = serviceName(service);
      await writeFile(
        join(tokensDir, `${name}.token`),
        await controlPlane.tokens.create(name, NAMESPACE, name, undefined, { app: name }),
      );
    }
    await sleep(SETTLE_MS);
    const baselineMb = await rssMb(pid);
    const started = {
      at: now(),
      busy: await machineBusySeconds(),
      controlPlane: await cpuSeconds(pid),
      harness: process.cpuUsage(),
    };
    const simulator = await startSimulator(
      {
        controlPlane: controlPlane.url,
        caFile: controlPlane.caFile,
        tokensDir,
        sidecars,
        firstPort: 20_000,
      },
      { logFile: join(dir, 'simulator.log'), ...(options.pin ? { cpu: 1 } : {}) },
    );
    try {
      const cpu = async (): Promise<Readings> => ({
        controlPlane: await cpuSeconds(pid),
        simulator: await cpuSeconds(simulator.child.process.pid!),
        listenOverflows: await listenOverflows(),
      });
      const certificates = await simulator.ask({ type: 'certificates' });
      const beforeConnect = await cpu();
      const connectTimeoutMs = Math.max(120_000, 120 * sidecars);
      const connected = await simulator.ask({ type: 'connect', timeoutMs: connectTimeoutMs });
      const afterConnect = await cpu();
      await sleep(SETTLE_MS);
      const idleMb = await rssMb(pid);
      const simulatorMb = await rssMb(simulator.child.process.pid!);
      // Edits on a fleet still connecting would measure the connecting.
      const edits = connected.complete
        ? await measureEdits(options, { sidecars, policiesDir, simulator, controlPlane, cpu })
        : [];
      const afterEditsMb = await rssMb(pid);
      const harness = process.cpuUsage(started.harness);
      const ours =
        (await cpuSeconds(pid)) -
        started.controlPlane +
        (await cpuSeconds(simulator.child.process.pid!)) +
        (harness.user + harness.system) / 1e6;
      const otherCpuSeconds = (await machineBusySeconds()) - started.busy - ours;
      finished = true;
      return {
        sidecars,
        services,
        replicas: REPLICAS,
        registryPerSidecar: registrySize(services),
        maxConnections,
        openFilesLimit: await openFilesLimit(pid),
        pinned: options.pin,
        gapMs: options.gapMs,
        certificates: { count: certificates.count, seconds: certificates.ms / 1000 },
        connect: {
          complete: connected.complete,
          deadlineSeconds: connectTimeoutMs / 1000,
          openedSeconds: connected.openedMs && connected.openedMs / 1000,
          convergedSeconds: connected.convergedMs && connected.convergedMs / 1000,
          opened: connected.opened,
          converged: connected.converged,
          controlPlaneCpuSeconds: afterConnect.controlPlane - beforeConnect.controlPlane,
          simulatorCpuSeconds: afterConnect.simulator - beforeConnect.simulator,
          listenOverflows: afterConnect.listenOverflows - beforeConnect.listenOverflows,
          traffic: connected.traffic,
        },
        memory: {
          baselineMb,
          idleMb,
          afterEditsMb,
          perSidecarKb: ((idleMb - baselineMb) * 1024) / sidecars,
          simulatorMb,
        },
        edits,
        wallSeconds: (now() - started.at) / 1000,
        otherCpuSeconds,
      };
    } finally {
      await simulator.stop();
    }
  } finally {
    await controlPlane.stop();
    // The logs of a run that failed are what explains it.
    if (finished && !options.keep) await rm(dir, { recursive: true, force: true });
    else console.error(`logs kept in ${dir}`);
  }
}
