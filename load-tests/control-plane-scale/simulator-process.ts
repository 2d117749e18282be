/**
 * The harness's handle on the simulator process: start it (optionally
 * pinned to a core) and ask it one command at a time.
 */
import { resolve } from 'node:path';
import { type Child, startChild, stopChild } from '../../cli/processes.ts';
import type { Command, Reply, SimulatorConfig } from './protocol.ts';

const SIMULATOR = resolve(import.meta.dirname, 'simulator.ts');

type ReplyOf<T extends Reply['type']> = Extract<Reply, { type: T }>;
interface Answers {
  certificates: ReplyOf<'certificates'>;
  connect: ReplyOf<'connected'>;
  mark: ReplyOf<'marked'>;
  'await-edit': ReplyOf<'edit'>;
}

export interface Simulator {
  readonly child: Child;
  ask<C extends Command>(command: C): Promise<Answers[C['type']]>;
  stop(): Promise<void>;
}

export async function startSimulator(
  config: SimulatorConfig,
  options: { logFile: string; cpu?: number },
): Promise<Simulator> {
  const child = startChild(
    'simulator',
    [SIMULATOR, JSON.stringify(config)],
    {},
    options.logFile,
    options.cpu,
    true,
  );
  const next = () =>
    new Promise<Reply>((done, fail) => {
      const exited = (code: number | null) =>
        fail(new Error(`the simulator exited (${code}); see ${options.logFile}`));
      child.process.once('exit', exited);
      child.process.once('message', (reply: Reply) => {
        child.process.off('exit', exited);
        if (reply.type === 'failed') fail(new Error(`the simulator failed: ${reply.message}`));
        else done(reply);
      });
    });
  try {
    const ready = await next();
    if (ready.type !== 'ready') throw new Error(`the simulator said ${ready.type} before ready`);
  } catch (error) {
    await stopChild(child);
    throw error;
  }
  return {
    child,
    async ask<C extends Command>(command: C) {
      const answer = next();
      child.process.send(command);
      return (await answer) as Answers[C['type']];
    },
    stop: () => stopChild(child),
  };
}
