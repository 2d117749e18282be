/**
 * A real Redis for the rate-limit tests: `redis-server` from Debian's
 * package, started on a free port with nothing persisted, stopped at
 * teardown. Every test gets its own, as most of them kill or freeze it.
 */
import { type ChildProcess, spawn } from 'node:child_process';
import { once } from 'node:events';
import { freePort, redisAnswers } from '../cli/processes.ts';

export interface RedisServer {
  readonly url: string;
  readonly port: number;
  /** SIGKILL: gone without a goodbye, as a crashed or evicted pod. */
  kill(): Promise<void>;
  /** Starts it again on the same port (empty: nothing was persisted). */
  restart(): Promise<void>;
  /** SIGSTOP / SIGCONT: connections stay open and nothing answers, a hung Redis. */
  freeze(): void;
  thaw(): void;
}

export async function startRedis(t: { teardown(fn: () => unknown): void }): Promise<RedisServer> {
  const port = await freePort();
  let child: ChildProcess | undefined;
  const start = async () => {
    child = spawn(
      'redis-server',
      ['--port', String(port), '--bind', '127.0.0.1', '--save', '', '--appendonly', 'no'],
      { stdio: 'ignore' },
    );
    child.once('error', (error) => {
      throw new Error(
        `redis-server could not start (apt-get install redis-server): ${error.message}`,
      );
    });
    for (let i = 0; i < 100 && !(await redisAnswers(port)); i++) {
      await new Promise((r) => setTimeout(r, 20));
    }
  };
  const kill = async () => {
    const running = child;
    if (!running || running.exitCode !== null || running.signalCode !== null) return;
    running.kill('SIGCONT');
    running.kill('SIGKILL');
    await once(running, 'exit');
  };
  await start();
  t.teardown(kill);
  return {
    url: `redis://127.0.0.1:${port}`,
    port,
    kill,
    restart: start,
    freeze: () => child?.kill('SIGSTOP'),
    thaw: () => child?.kill('SIGCONT'),
  };
}
