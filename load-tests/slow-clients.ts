/**
 * Slow and stuck clients in their thousands against a sidecar process:
 * what they cost it in memory and file descriptors while they hold on, and
 * that the limits cut every one of them loose.
 *
 *   npm run bench:slow-clients [-- --connections 2000]
 *
 * Kinds, one at a time, each `--connections` strong, against a fresh look
 * at the sidecar (RSS and open fds from /proc, sampled every 250 ms):
 *   - silent: TCP connected to the inbound port, not a byte of TLS
 *     (cut by the handshake timeout, 5 s);
 *   - slow-headers: TLS done, a request head that never ends (headers
 *     timeout, 10 s; 408);
 *   - stalled-body: a POST whose body stops half-way (stream idle timeout,
 *     here 15 s through --limits: the default 5 min would make a long run);
 *   - not-reading: the app asks its outbound listener for 1 GiB (made as
 *     it is taken) and stops reading (plain TCP, so the reads really stop;
 *     the sidecar's writes stall; stream idle timeout).
 * Prints one line per kind and a Markdown table.
 */

import { readdir, readFile, writeFile } from 'node:fs/promises';
import { connect as connectTcp, type Socket } from 'node:net';
import { join } from 'node:path';
import { connect as connectTls } from 'node:tls';
import { parseArgs } from 'node:util';
import { request } from 'undici';
import {
  clientCredentials,
  ordersPolicyYaml,
  spawnSidecar,
  startEchoApp,
  startTestMesh,
  TESTER,
  untilReady,
  workloadEnv,
} from '../test/helpers.ts';

const { values } = parseArgs({
  options: { connections: { type: 'string', default: '2000' } },
});
const connections = Number(values.connections);
const STREAM_IDLE = process.env.STREAM_IDLE ?? '15s';

const cleanups: (() => unknown)[] = [];
const t = { teardown: (fn: () => unknown) => cleanups.push(fn) };

interface Sample {
  readonly rssMb: number;
  /** What the process holds (heap in use plus Buffers), as its overload guard reads it. */
  readonly heldMb: number;
  readonly fds: number;
}

interface Watched {
  readonly pid: number;
  readonly adminPort: number;
}

async function sample({ pid, adminPort }: Watched): Promise<Sample> {
  const status = await readFile(`/proc/${pid}/status`, 'utf8');
  const rssKb = Number(/VmRSS:\s+(\d+)/.exec(status)?.[1] ?? 0);
  const stats = (await (await request(`http://127.0.0.1:${adminPort}/stats`)).body.json()) as {
    process: { heapUsedMb: number; externalMb: number };
  };
  return {
    rssMb: rssKb / 1024,
    heldMb: stats.process.heapUsedMb + stats.process.externalMb,
    fds: (await readdir(`/proc/${pid}/fd`)).length,
  };
}

const maxOf = (a: Sample, b: Sample): Sample => ({
  rssMb: Math.max(a.rssMb, b.rssMb),
  heldMb: Math.max(a.heldMb, b.heldMb),
  fds: Math.max(a.fds, b.fds),
});

interface Row {
  readonly kind: string;
  readonly before: Sample;
  readonly peak: Sample;
  readonly after: Sample;
  readonly cutAfterS: number;
  readonly open: number;
}

/** Opens `count` sockets with `open`, samples the sidecar until all are closed, then once more. */
async function measureKind(
  kind: string,
  watched: Watched,
  open: () => Promise<Socket>,
  count: number,
): Promise<Row> {
  const before = await sample(watched);
  let peak = before;
  let closed = 0;
  const started = performance.now();
  let lastClose = started;
  const sockets: Socket[] = [];
  for (let i = 0; i < count; i++) {
    const socket = await open();
    socket.on('error', () => {});
    socket.once('close', () => {
      closed++;
      lastClose = performance.now();
    });
    sockets.push(socket);
  }
  // Every socket reads (and drops) what it is sent only once it is cut
  // loose, except not-reading ones: a paused socket cannot see the close,
  // so those are resumed after the stream idle timeout has had its chance.
  while (closed < count && performance.now() - started < 150_000) {
    await new Promise((resolve) => setTimeout(resolve, 250));
    peak = maxOf(peak, await sample(watched));
    // Thousands of streams take tens of seconds to fill every buffer on the
    // way (a loopback socket's receive buffer grows to 6 MB) and stall; one
    // still open 120 s in was never cut.
    if (kind === 'not-reading' && performance.now() - started > 120_000)
      for (const socket of sockets) socket.resume();
  }
  await new Promise((resolve) => setTimeout(resolve, 1_000));
  const after = await sample(watched);
  for (const socket of sockets) socket.destroy();
  return {
    kind,
    before,
    peak,
    after,
    cutAfterS: (lastClose - started) / 1000,
    open: count - closed,
  };
}

async function main(): Promise<void> {
  const mesh = await startTestMesh(
    t,
    ordersPolicyYaml([TESTER, 'spiffe://cluster.local/ns/shop/sa/orders']),
  );
  const app = await startEchoApp(t);
  const env = await workloadEnv(mesh, 'orders', app.port);
  // A fresh process per kind: the allocator keeps RSS at its high-water
  // mark, and one kind's peak would be the next one's floor.
  const startSidecar = async () => {
    const sidecar = await spawnSidecar(t, {
      ...env,
      POSTERN_LIMITS: `stream-idle-timeout=${STREAM_IDLE},max-connections=${connections * 2}`,
      POSTERN_MAX_INBOUND_CONNECTIONS: String(connections * 2),
    });
    await untilReady(sidecar.adminPort);
    // Its first snapshot lists orders: the outbound path reaches it.
    for (let i = 0; i < 100; i++) {
      const res = await request(`http://127.0.0.1:${sidecar.outboundPort}/orders`, {
        headers: { host: 'orders' },
      });
      await res.body.dump();
      if (res.statusCode === 200) break;
      await new Promise((resolve) => setTimeout(resolve, 100));
    }
    return sidecar;
  };
  let sidecar = await startSidecar();
  const credentials = await clientCredentials(mesh.controlPlane.ca, TESTER);
  const tls = (first: string) =>
    new Promise<Socket>((resolve, reject) => {
      const socket = connectTls({
        host: '127.0.0.1',
        port: sidecar.inboundPort,
        ...credentials,
        checkServerIdentity: () => undefined,
      });
      socket.once('secureConnect', () => {
        socket.write(first);
        // Reading (and dropping) what comes: a socket that does not read cannot see the close.
        socket.resume();
        resolve(socket);
      });
      socket.once('error', reject);
    });
  const tcp = (port: number, first?: string, paused = false) =>
    new Promise<Socket>((resolve, reject) => {
      const socket = connectTcp(port, '127.0.0.1');
      socket.once('connect', () => {
        if (first) socket.write(first);
        if (paused) socket.pause();
        else socket.resume();
        resolve(socket);
      });
      socket.once('error', reject);
    });
  const say = (line: string) => process.stdout.write(`${line}\n`);
  const rows: Row[] = [];
  const only = process.env.KINDS?.split(',');
  const kinds: [string, () => Promise<Socket>][] = [
    ['silent', () => tcp(sidecar.inboundPort)],
    ['slow-headers', () => tls('GET /orders HTTP/1.1\r\nHost: orders\r\nX-Slow: ')],
    [
      'stalled-body',
      () => tls('POST /orders HTTP/1.1\r\nHost: orders\r\nContent-Length: 1000000\r\n\r\nhalf'),
    ],
    [
      'not-reading',
      () =>
        tcp(
          sidecar.outboundPort,
          `GET /orders?size=${2 ** 30}&chunked=1 HTTP/1.1\r\nHost: orders\r\n\r\n`,
          true,
        ),
    ],
  ];
  let first = true;
  for (const [kind, open] of kinds.filter(([kind]) => !only || only.includes(kind))) {
    if (!first) {
      sidecar.child.kill('SIGKILL');
      sidecar = await startSidecar();
    }
    first = false;
    const count = connections;
    const row = await measureKind(
      kind,
      { pid: sidecar.child.pid!, adminPort: sidecar.adminPort },
      open,
      count,
    );
    rows.push(row);
    say(
      `${kind}: ${count} connections; sidecar RSS ${row.before.rssMb.toFixed(0)} -> peak ${row.peak.rssMb.toFixed(0)} -> ${row.after.rssMb.toFixed(0)} MB, held ${row.before.heldMb} -> peak ${row.peak.heldMb} -> ${row.after.heldMb} MB, fds ${row.before.fds} -> peak ${row.peak.fds} -> ${row.after.fds}; all cut within ${row.cutAfterS.toFixed(1)} s (${row.open} still open)`,
    );
  }
  const table = [
    '| kind | connections | RSS before / peak / after (MB) | held before / peak / after (MB) | fds before / peak / after | all cut within | left open |',
    '| --- | --- | --- | --- | --- | --- | --- |',
    ...rows.map(
      (r) =>
        `| ${r.kind} | ${connections} | ${r.before.rssMb.toFixed(0)} / ${r.peak.rssMb.toFixed(0)} / ${r.after.rssMb.toFixed(0)} | ${r.before.heldMb} / ${r.peak.heldMb} / ${r.after.heldMb} | ${r.before.fds} / ${r.peak.fds} / ${r.after.fds} | ${r.cutAfterS.toFixed(1)} s | ${r.open} |`,
    ),
  ].join('\n');
  const out = join(import.meta.dirname, 'reports', 'slow-clients.md');
  await writeFile(
    out,
    `# Slow clients against a sidecar process\n\nDefaults except stream-idle-timeout=${STREAM_IDLE}; \`npm run bench:slow-clients\`. A fresh sidecar process per kind. Held is what the process holds (V8 heap in use plus Buffers, as its overload guard reads it); RSS stays at the allocator's high-water mark after a burst, and counts what TLS holds natively, which held does not.\n\n${table}\n`,
  );
  say(`\n${table}\n\nwrote ${out}`);
}

try {
  await main();
} finally {
  for (const cleanup of cleanups.reverse()) await cleanup();
}
