import { write } from 'node:fs';

/**
 * An asynchronous JSON-lines logger. On Linux, writes to a pipe through
 * process.stderr block the event loop; this queues lines and writes them in
 * batches on libuv's thread pool, one write in flight, so the request path
 * never waits on logging. Past `maxQueued` lines it drops and counts rather
 * than grow without bound under a flood of denials.
 */
export class Logger {
  readonly #fd: number;
  readonly #component: string;
  readonly #maxQueued: number;
  #queue: string[] = [];
  #writing = false;
  #dropped = 0;

  constructor(component: string, options: { fd?: number; maxQueued?: number } = {}) {
    this.#component = component;
    this.#fd = options.fd ?? 2;
    this.#maxQueued = options.maxQueued ?? 10_000;
  }

  info(msg: string, fields?: Record<string, unknown>): void {
    this.#log('info', msg, fields);
  }

  warn(msg: string, fields?: Record<string, unknown>): void {
    this.#log('warn', msg, fields);
  }

  error(msg: string, fields?: Record<string, unknown>): void {
    this.#log('error', msg, fields);
  }

  #log(level: string, msg: string, fields?: Record<string, unknown>): void {
    if (this.#queue.length >= this.#maxQueued) {
      this.#dropped++;
      return;
    }
    // The record's own fields are set after the caller's: a field named
    // time, level, component or msg (say, copied from a request body) keeps
    // its place in the line but can never replace ours.
    const record: Record<string, unknown> = { time: '', level, component: '', msg, ...fields };
    record.time = new Date().toISOString();
    record.level = level;
    record.component = this.#component;
    record.msg = msg;
    this.#queue.push(JSON.stringify(record, errorReplacer));
    if (!this.#writing) this.#flush();
  }

  #flush(): void {
    if (this.#dropped) {
      this.#queue.push(
        JSON.stringify({
          time: new Date().toISOString(),
          level: 'warn',
          component: this.#component,
          msg: 'log lines dropped',
          dropped: this.#dropped,
        }),
      );
      this.#dropped = 0;
    }
    if (!this.#queue.length) {
      this.#writing = false;
      return;
    }
    this.#writing = true;
    const batch = Buffer.from(this.#queue.join('\n') + '\n');
    this.#queue = [];
    write(this.#fd, batch, () => this.#flush());
  }
}

function errorReplacer(_key: string, value: unknown): unknown {
  if (value instanceof Error) {
    return { name: value.name, message: value.message, code: (value as { code?: unknown }).code };
  }
  return value;
}
