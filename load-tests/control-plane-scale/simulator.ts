/**
 * The simulator process: N simulated sidecars in one Node process, steered
 * by the harness over the IPC channel (see protocol.ts). Started by
 * simulator-process.ts; exits when the harness goes.
 */
import { readFile } from 'node:fs/promises';
import { Logger } from '../../common/log.ts';
import { Fleet } from './fleet.ts';
import type { Command, Reply, SimulatorConfig } from './protocol.ts';

const config = JSON.parse(process.argv[2]!) as SimulatorConfig;
// One log for the fleet (this process's stderr, which the harness writes to a file).
const fleet = new Fleet(config, await readFile(config.caFile, 'utf8'), new Logger('simulator'));
const send = (reply: Reply) => process.send!(reply);

async function run(command: Command): Promise<Reply> {
  switch (command.type) {
    case 'certificates':
      return fleet.certificates();
    case 'connect':
      return fleet.connect(command.timeoutMs);
    case 'mark':
      fleet.mark();
      return { type: 'marked' };
    case 'await-edit':
      return fleet.awaitEdit(command.savedAt, command.timeoutMs);
  }
}

process.on('message', (command: Command) => {
  run(command).then(send, (error: unknown) =>
    send({ type: 'failed', message: (error as Error).stack ?? String(error) }),
  );
});
// Gone with the harness; SIGTERM (stopChild) exits normally too, so --cpu-prof can write its profile.
process.on('disconnect', () => process.exit(0));
process.on('SIGTERM', () => process.exit(0));
send({ type: 'ready' });
