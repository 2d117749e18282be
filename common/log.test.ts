import { closeSync, openSync, readFileSync } from 'node:fs';
import { mkdtemp } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import t from 'tap';
import { Logger } from './log.ts';

async function logTo(
  maxQueued: number,
  write: (logger: Logger) => void,
): Promise<Record<string, unknown>[]> {
  const file = join(await mkdtemp(join(tmpdir(), 'postern-log-')), 'log.jsonl');
  const fd = openSync(file, 'w');
  const logger = new Logger('test', { fd, maxQueued });
  write(logger);
  // The logger writes on the thread pool; wait until it has drained.
  await new Promise((resolve) => setTimeout(resolve, 100));
  closeSync(fd);
  return readFileSync(file, 'utf8')
    .trim()
    .split('\n')
    .map((line) => JSON.parse(line));
}

t.test(
  'each record is one JSON line with time, level, component, message and fields, errors reduced to name, message and code',
  async (t) => {
    const [record] = await logTo(100, (logger) =>
      logger.warn('denied', { error: Object.assign(new Error('boom'), { code: 'X' }), path: '/a' }),
    );
    t.match(record, {
      level: 'warn',
      component: 'test',
      msg: 'denied',
      path: '/a',
      error: { name: 'Error', message: 'boom', code: 'X' },
    });
    t.match(record!.time, /^\d{4}-\d{2}-\d{2}T/);
  },
);

t.test('logging never blocks: the calls return before anything is written, in order', async (t) => {
  const records = await logTo(1000, (logger) => {
    for (let i = 0; i < 50; i++) logger.info(`line ${i}`);
  });
  t.same(
    records.map((r) => r.msg),
    Array.from({ length: 50 }, (_, i) => `line ${i}`),
  );
});

t.test(
  'a flood beyond the queue bound is dropped and counted, not buffered without limit',
  async (t) => {
    const records = await logTo(10, (logger) => {
      for (let i = 0; i < 100; i++) logger.info(`line ${i}`);
    });
    const dropped = records.find((r) => r.msg === 'log lines dropped');
    t.ok(dropped, 'a record says lines were dropped');
    t.equal(
      records.filter((r) => r.msg !== 'log lines dropped').length + Number(dropped!.dropped),
      100,
      'every line is either written or counted',
    );
  },
);

t.test(
  'fields named time, level, component or msg cannot replace the record’s own (a forged ack reason wrote a line naming another workload)',
  async (t) => {
    const before = Date.now();
    const [record] = await logTo(100, (logger) =>
      logger.warn('snapshot rejected by sidecar', {
        time: '1999-01-01T00:00:00Z',
        level: 'info',
        component: 'sidecar',
        msg: 'certificate issued',
        reason: 'x',
      }),
    );
    t.equal(record!.level, 'warn');
    t.equal(record!.component, 'test');
    t.equal(record!.msg, 'snapshot rejected by sidecar');
    t.ok(Date.parse(record!.time as string) >= before - 1000, 'the time is the logger’s');
    t.equal(record!.reason, 'x', 'other fields are kept');
  },
);
