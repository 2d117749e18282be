import { execFileSync } from 'node:child_process';
import { createServer } from 'node:net';
import t from 'tap';
import { closeServer, listen } from './listen.ts';

/** The accept-queue length the kernel holds for a listening port: ss's Send-Q column (Linux). */
function kernelBacklog(port: number): number {
  const out = execFileSync('ss', ['-ltnH', `sport = :${port}`], { encoding: 'utf8' });
  return Number(out.trim().split(/\s+/)[2]);
}

t.test(
  "a listener asks the kernel for the accept queue it was given, and Node's default without one",
  async (t) => {
    const withBacklog = createServer();
    const port = await listen(withBacklog, 0, '127.0.0.1', 1000);
    t.teardown(() => closeServer(withBacklog));
    t.equal(kernelBacklog(port), 1000);
    const plain = createServer();
    const plainPort = await listen(plain, 0, '127.0.0.1');
    t.teardown(() => closeServer(plain));
    t.equal(kernelBacklog(plainPort), 511);
  },
);
