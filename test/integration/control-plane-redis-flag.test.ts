import { spawnSync } from 'node:child_process';
import { join } from 'node:path';
import t from 'tap';
import { CHILD_NODE_ARGS, POSTERN_BIN } from '../../cli/processes.ts';
import { tempDir } from '../helpers.ts';

t.test(
  'the control plane refuses a --redis that is not a redis:// URL, from the flag or the environment',
  async (t) => {
    const dir = await tempDir(t);
    const run = (args: string[], env: Record<string, string> = {}) =>
      spawnSync(
        process.execPath,
        [
          ...CHILD_NODE_ARGS,
          POSTERN_BIN,
          'control-plane',
          '--state',
          join(dir, 'state'),
          '--policies',
          dir,
          ...args,
        ],
        { encoding: 'utf8', env: { ...process.env, ...env }, timeout: 20_000 },
      );
    const flag = run(['--redis', 'http://cache:6379']);
    t.equal(flag.status, 2);
    t.match(
      flag.stderr,
      '--redis: expected a redis:// or rediss:// URL; found "http://cache:6379"',
    );
    const env = run([], { POSTERN_REDIS_URL: 'redis://two words' });
    t.equal(env.status, 2);
    t.match(env.stderr, 'found "redis://two words"');
  },
);
