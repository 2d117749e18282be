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

export interface Measured extends LoadResult {
  readonly target: string;
  /** The proxy's CPU seconds during the measured phase and warm-up. */
  readonly proxyCpuSeconds?: number;
  /** The proxy's RSS after the load, MB. */
  readonly proxyRssMb?: number;
}

/** Runs one load against `target` and charges it the proxy's CPU. */
export async function measure(
  target: Target,
  load: Omit<LoadSpec, 'url' | 'clientCertDir'>,
): Promise<Measured> {
  const pid = target.proxy?.process.pid;
  const cpuBefore = pid ? await cpuSeconds(pid) : 0;
  const spec: LoadSpec = {
    ...load,
    url: target.url,
    ...(target.clientCertDir ? { clientCertDir: target.clientCertDir } : {}),
  };
  const { stdout } = await promisify(execFile)(
    'taskset',
    ['-c', String(LOAD_CPU), process.execPath, ...CHILD_NODE_ARGS, GENERATOR, JSON.stringify(spec)],
    { maxBuffer: 1 << 20 },
  );
  const result = JSON.parse(stdout) as LoadResult;
  if (!pid) return { target: target.name, ...result };
  return {
    target: target.name,
    ...result,
    proxyCpuSeconds: (await cpuSeconds(pid)) - cpuBefore,
    proxyRssMb: await rssMb(pid),
  };
}
