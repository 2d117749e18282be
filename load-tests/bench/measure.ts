/**
 * Readings the harness takes around a load: the proxy's CPU time and RSS
 * from /proc (what it really spent, whatever the generator managed), and the
 * load itself, run by generator.ts in its own process pinned to LOAD_CPU.
 */
import { execFile } from 'node:child_process';
import { readFile } from 'node:fs/promises';
import { resolve } from 'node:path';
import { promisify } from 'node:util';
import { CHILD_NODE_ARGS } from '../../cli/processes.ts';
import { median } from '../statistics.ts';
import type { LoadResult, LoadSpec } from './generator.ts';
import { LOAD_CPU, type Target } from './targets.ts';

const GENERATOR = resolve(import.meta.dirname, 'generator.ts');
const CLOCK_TICKS = 100; // USER_HZ on Linux

/** User plus system CPU seconds the process has used. */
export async function cpuSeconds(pid: number): Promise<number> {
  const stat = await readFile(`/proc/${pid}/stat`, 'utf8');
  // Fields after the command name (which may hold spaces) start at state.
  const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
  return (Number(fields[11]) + Number(fields[12])) / CLOCK_TICKS;
}

/** Resident set size in MB. */
export async function rssMb(pid: number): Promise<number> {
  const status = await readFile(`/proc/${pid}/status`, 'utf8');
  const kb = Number(/VmRSS:\s+(\d+) kB/.exec(status)?.[1] ?? Number.NaN);
  return kb / 1024;
}

/** The most resident memory the process has held since it started (VmHWM), MB. */
export async function peakRssMb(pid: number): Promise<number> {
  const status = await readFile(`/proc/${pid}/status`, 'utf8');
  const kb = Number(/VmHWM:\s+(\d+) kB/.exec(status)?.[1] ?? Number.NaN);
  return kb / 1024;
}

/** The RSS of a single-process proxy target, MB. */
export const proxyRssMb = (target: Target) => rssMb(target.proxies![0]!.process.pid!);

/** The soft limit on open files (sockets included). */
export async function openFilesLimit(pid: number): Promise<number> {
  const limits = await readFile(`/proc/${pid}/limits`, 'utf8');
  return Number(/^Max open files\s+(\d+)/m.exec(limits)?.[1] ?? Number.NaN);
}

/** A load as the harness gives it: the target supplies the URL, Host and client certificate. */
export type Load = Omit<LoadSpec, 'url' | 'clientCertDir' | 'host'>;

export interface Measured extends LoadResult {
  readonly target: string;
  /** The proxies' CPU seconds during the measured phase and warm-up (summed over the path). */
  readonly proxyCpuSeconds?: number;
  /** The proxies' RSS after the load, MB (summed over the path). */
  readonly proxyRssMb?: number;
}

/** Runs one load against `target` and charges it its proxies' CPU (summed) and RSS (summed). */
export async function measure(target: Target, load: Load): Promise<Measured> {
  const pids = (target.proxies ?? []).map((child) => child.process.pid!);
  const cpuOf = async () => (await Promise.all(pids.map(cpuSeconds))).reduce((a, b) => a + b, 0);
  const cpuBefore = await cpuOf();
  const spec: LoadSpec = {
    ...load,
    url: target.url,
    ...(target.host ? { host: target.host } : {}),
    ...(target.clientCertDir ? { clientCertDir: target.clientCertDir } : {}),
  };
  const { stdout } = await promisify(execFile)(
    'taskset',
    ['-c', String(LOAD_CPU), process.execPath, ...CHILD_NODE_ARGS, GENERATOR, JSON.stringify(spec)],
    { maxBuffer: 1 << 20 },
  );
  const result = JSON.parse(stdout) as LoadResult;
  if (!pids.length) return { target: target.name, ...result };
  return {
    target: target.name,
    ...result,
    proxyCpuSeconds: (await cpuOf()) - cpuBefore,
    proxyRssMb: (await Promise.all(pids.map(rssMb))).reduce((a, b) => a + b, 0),
  };
}

/** A load in a few words, for progress lines. */
export function describeLoad(load: Load): string {
  return load.mode === 'open'
    ? `${load.rate} rps for ${load.seconds} s`
    : `closed loop over ${load.connections} connections for ${load.seconds} s`;
}

/**
 * `rounds` rounds of `load` against each target, the targets taking turns
 * round after round, so that a slow minute of the machine lands on all of
 * them rather than on one. Each target's results in round order.
 */
export async function measureInterleaved(
  targets: readonly Target[],
  load: Load,
  rounds: number,
  say: (line: string) => void,
): Promise<Map<Target, Measured[]>> {
  const measured = new Map<Target, Measured[]>(targets.map((target) => [target, []]));
  for (let round = 1; round <= rounds; round++) {
    for (const target of targets) {
      say(`round ${round}/${rounds} ${target.name}: ${describeLoad(load)}`);
      measured.get(target)!.push(await measure(target, load));
    }
  }
  return measured;
}

const range = (values: readonly number[]): [number, number] => [
  Math.min(...values),
  Math.max(...values),
];

/** One target's rounds as one result: the median of each figure, and the spread of the headline ones. */
export interface Combined extends Measured {
  readonly rounds: number;
  readonly spread: {
    readonly p50: [number, number];
    readonly p99: [number, number];
    readonly proxyCpuSeconds?: [number, number];
  };
}

export function combineRounds(rounds: readonly Measured[]): Combined {
  const last = rounds[rounds.length - 1]!;
  const of = (pick: (m: Measured) => number) => median(rounds.map(pick));
  const cpu = rounds.flatMap((m) => (m.proxyCpuSeconds === undefined ? [] : [m.proxyCpuSeconds]));
  return {
    ...last,
    requests: rounds.reduce((sum, m) => sum + m.requests, 0),
    ...(rounds.every((m) => m.warmupRequests !== undefined)
      ? { warmupRequests: rounds.reduce((sum, m) => sum + m.warmupRequests!, 0) }
      : {}),
    errors: rounds.reduce((sum, m) => sum + m.errors, 0),
    throughput: of((m) => m.throughput),
    latencyMs: {
      p50: of((m) => m.latencyMs.p50),
      p90: of((m) => m.latencyMs.p90),
      p99: of((m) => m.latencyMs.p99),
      p999: of((m) => m.latencyMs.p999),
      max: Math.max(...rounds.map((m) => m.latencyMs.max)),
    },
    sendLagP99Ms: of((m) => m.sendLagP99Ms),
    ...(cpu.length ? { proxyCpuSeconds: median(cpu) } : {}),
    rounds: rounds.length,
    spread: {
      p50: range(rounds.map((m) => m.latencyMs.p50)),
      p99: range(rounds.map((m) => m.latencyMs.p99)),
      ...(cpu.length ? { proxyCpuSeconds: range(cpu) } : {}),
    },
  };
}
