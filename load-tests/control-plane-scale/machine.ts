/**
 * Machine-wide readings from /proc, taken around a phase: they count every
 * process, so they tell whether something else ran beside the measurement
 * and how often the kernel dropped connections.
 */
import { readFile } from 'node:fs/promises';

const CLOCK_TICKS = 100; // USER_HZ on Linux

/**
 * Connections the kernel dropped because a listener's accept queue was full
 * (TcpExt ListenOverflows). Node listens with a backlog of 511: a burst of
 * new connections larger than that, while the event loop is busy, loses
 * SYNs that the client then resends a second or more later.
 */
export async function listenOverflows(): Promise<number> {
  const lines = (await readFile('/proc/net/netstat', 'utf8'))
    .split('\n')
    .filter((line) => line.startsWith('TcpExt:'));
  const names = lines[0]?.split(/\s+/) ?? [];
  const values = lines[1]?.split(/\s+/) ?? [];
  return Number(values[names.indexOf('ListenOverflows')] ?? Number.NaN);
}

/** CPU seconds every core has spent busy since boot (all but idle and iowait). */
export async function machineBusySeconds(): Promise<number> {
  const [, ...fields] = (await readFile('/proc/stat', 'utf8')).split('\n')[0]!.split(/\s+/);
  const ticks = fields.map(Number);
  const total = ticks.slice(0, 8).reduce((sum, n) => sum + n, 0);
  return (total - ticks[3]! - ticks[4]!) / CLOCK_TICKS;
}
