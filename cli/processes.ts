import { type ChildProcess, spawn } from 'node:child_process';
import { createWriteStream } from 'node:fs';
import { connect, createServer } from 'node:net';
import { request } from 'undici';
import { posternBin } from './postern-bin.ts';

/** The `postern` binary children run: the fresh bundle, or the source (see postern-bin.ts). */
export const POSTERN_BIN = posternBin();

/** Node flags for every child: http-proxy (2020) trips a deprecation warning on Node 24 that says nothing about us. */
export const CHILD_NODE_ARGS = ['--disable-warning=DEP0060'];

/** A port that was free a moment ago (bind to 0, read, close); good enough for a dev mesh on loopback. */
export function freePort(): Promise<number> {
  return new Promise((done, fail) => {
    const server = createServer();
    server.once('error', fail);
    server.listen(0, '127.0.0.1', () => {
      const { port } = server.address() as { port: number };
      server.close(() => done(port));
    });
  });
}

export interface Child {
  readonly name: string;
  readonly process: ChildProcess;
  /** Resolves with the exit code when the process ends. */
  readonly exited: Promise<number | null>;
}

/**
 * Starts `command <args>` with `env` added, output appended to `logFile`;
 * with `cpu`, pinned to that core (taskset execs the command, so the pid is
 * the command's own, as /proc readings need). With `ipc`, a Node child gets
 * the `process.send` channel, for harness processes steered by messages.
 */
export function startProcess(
  name: string,
  command: string,
  args: readonly string[],
  env: Record<string, string>,
  logFile: string,
  cpu?: number,
  ipc = false,
): Child {
  const log = createWriteStream(logFile, { flags: 'a' });
  const [file, argv] =
    cpu === undefined ? [command, args] : ['taskset', ['-c', String(cpu), command, ...args]];
  const child = spawn(file, argv, {
    env: { ...process.env, ...env },
    stdio: ['ignore', 'pipe', 'pipe', ...(ipc ? (['ipc'] as const) : [])],
  });
  child.stdout!.pipe(log, { end: false });
  child.stderr!.pipe(log, { end: false });
  const exited = new Promise<number | null>((done) => child.once('exit', (code) => done(code)));
  return { name, process: child, exited };
}

/** Starts `node <args>` (this Node) with `env` added, output appended to `logFile`, optionally pinned to `cpu` and with an IPC channel. */
export function startChild(
  name: string,
  args: readonly string[],
  env: Record<string, string>,
  logFile: string,
  cpu?: number,
  ipc = false,
): Child {
  return startProcess(
    name,
    process.execPath,
    [...CHILD_NODE_ARGS, ...args],
    env,
    logFile,
    cpu,
    ipc,
  );
}

/** Polls `url` until it answers 2xx, the child exits, or `timeoutMs` passes. */
export async function waitUntilHealthy(
  url: string,
  child: Child,
  timeoutMs: number,
  dispatcher?: import('undici').Dispatcher,
  headers?: Record<string, string>,
): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  let exited = false;
  void child.exited.then(() => {
    exited = true;
  });
  while (Date.now() < deadline) {
    if (exited) throw new Error(`${child.name} exited before it became ready`);
    try {
      const response = await request(url, {
        ...(dispatcher ? { dispatcher } : {}),
        ...(headers ? { headers } : {}),
      });
      await response.body.dump();
      if (response.statusCode < 300) return;
    } catch {}
    await new Promise((r) => setTimeout(r, 100));
  }
  throw new Error(`${child.name} was not ready at ${url} within ${timeoutMs} ms`);
}

/** SIGTERM, then SIGKILL if it has not exited within `graceMs`. */
export async function stopChild(child: Child, graceMs = 5000): Promise<void> {
  if (child.process.exitCode !== null || child.process.signalCode !== null) return;
  child.process.kill('SIGTERM');
  const timer = setTimeout(() => child.process.kill('SIGKILL'), graceMs);
  await child.exited;
  clearTimeout(timer);
}

/**
 * `postern control-plane` as its own process on 127.0.0.1, configured by
 * POSTERN_* variables as in a pod; `env` adds more of them (other flags,
 * such as POSTERN_MAX_CONNECTIONS).
 */
export function startControlPlaneProcess(options: {
  policiesDir: string;
  stateDir: string;
  apiPort: number;
  logFile: string;
  cpu?: number;
  env?: Record<string, string>;
}): Child {
  return startChild(
    'control-plane',
    [POSTERN_BIN, 'control-plane'],
    {
      ...options.env,
      POSTERN_POLICIES: options.policiesDir,
      POSTERN_STATE: options.stateDir,
      POSTERN_API_PORT: String(options.apiPort),
      POSTERN_HOST: '127.0.0.1',
    },
    options.logFile,
    options.cpu,
  );
}

/** Whether a Redis answers PING on 127.0.0.1:`port` (within a second). */
export function redisAnswers(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const socket = connect(port, '127.0.0.1');
    socket.setTimeout(1000, () => {
      socket.destroy();
      resolve(false);
    });
    socket.once('connect', () => socket.write('PING\r\n'));
    socket.once('data', (data) => {
      socket.destroy();
      resolve(data.toString().startsWith('+PONG'));
    });
    socket.once('error', () => resolve(false));
  });
}
