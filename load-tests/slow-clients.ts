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
import {
  clientCredentials,
  ordersPolicyYaml,
  spawnSidecar,
  startEchoApp,
  startTestMesh,
  untilReady,
} from '../test/helpers.ts';

const { values } = parseArgs({
  options: { connections: { type: 'string', default: '2000' } },
});
const connections = Number(values.connections);
const TESTER = 'spiffe://cluster.local/ns/default/sa/tester';
const STREAM_IDLE = process.env.STREAM_IDLE ?? '15s';

const cleanups: (() => unknown)[] = [];
const t = { teardown: (fn: () => unknown) => cleanups.push(fn) };

interface Sample {
  readonly rssMb: number;
  readonly fds: number;
}

async function sample(pid: number): Promise<Sample> {
  const status = await readFile(`/proc/${pid}/status`, 'utf8');
  const rssKb = Number(/VmRSS:\s+(\d+)/.exec(status)?.[1] ?? 0);
  return { rssMb: rssKb / 1024, fds: (await readdir(`/proc/${pid}/fd`)).length };
}

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
  pid: number,
  open: () => Promise<Socket>,
  count: number,
): Promise<Row> {
  const before = await sample(pid);
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
  while (closed < count && performance.now() - started < 60_000) {
    await new Promise((resolve) => setTimeout(resolve, 250));
    const now = await sample(pid);
    if (now.rssMb > peak.rssMb || now.fds > peak.fds)
      peak = { rssMb: Math.max(now.rssMb, peak.rssMb), fds: Math.max(now.fds, peak.fds) };
    // Hundreds of streams take seconds to fill every buffer on the way and
    // stall; one still open 40 s in was never cut.
    if (kind === 'not-reading' && performance.now() - started > 40_000)
      for (const socket of sockets) socket.resume();
  }
  await new Promise((resolve) => setTimeout(resolve, 1_000));
  const after = await sample(pid);
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
  const sidecar = await spawnSidecar(t, {
    POSTERN_CONTROL_PLANE: mesh.controlPlaneUrl,
    POSTERN_CA_FILE: mesh.caFile,
    POSTERN_BOOTSTRAP_TOKEN_FILE: await mesh.tokenFor('orders', 'shop'),
    POSTERN_WORKLOAD: 'orders',
    POSTERN_NAMESPACE: 'shop',
    POSTERN_SERVICE_ACCOUNT: 'orders',
    POSTERN_APP_PORT: String(app.port),
    POSTERN_LIMITS: `stream-idle-timeout=${STREAM_IDLE}`,
    POSTERN_MAX_INBOUND_CONNECTIONS: String(connections * 2),
  });
  await untilReady(sidecar.adminPort);
  const pid = sidecar.child.pid!;
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
  for (const [kind, open] of kinds.filter(([kind]) => !only || only.includes(kind))) {
    // not-reading goes through the mesh to the app and back: fewer, each a stream held up end to end.
    const count = kind === 'not-reading' ? Math.min(connections, 500) : connections;
    const row = await measureKind(kind, pid, open, count);
    rows.push(row);
    say(
      `${kind}: ${count} connections; sidecar RSS ${row.before.rssMb.toFixed(0)} -> peak ${row.peak.rssMb.toFixed(0)} -> ${row.after.rssMb.toFixed(0)} MB, fds ${row.before.fds} -> peak ${row.peak.fds} -> ${row.after.fds}; all cut within ${row.cutAfterS.toFixed(1)} s (${row.open} still open)`,
    );
  }
  const table = [
    '| kind | connections | RSS before / peak / after (MB) | fds before / peak / after | all cut within | left open |',
    '| --- | --- | --- | --- | --- | --- |',
    ...rows.map(
      (r) =>
        `| ${r.kind} | ${r.kind === 'not-reading' ? Math.min(connections, 500) : connections} | ${r.before.rssMb.toFixed(0)} / ${r.peak.rssMb.toFixed(0)} / ${r.after.rssMb.toFixed(0)} | ${r.before.fds} / ${r.peak.fds} / ${r.after.fds} | ${r.cutAfterS.toFixed(1)} s | ${r.open} |`,
    ),
  ].join('\n');
  const out = join(import.meta.dirname, 'reports', 'slow-clients.md');
  await writeFile(
    out,
    `# Slow clients against one sidecar process\n\nDefaults except stream-idle-timeout=${STREAM_IDLE}; \`npm run bench:slow-clients\`.\n\n${table}\n`,
  );
  say(`\n${table}\n\nwrote ${out}`);
}

try {
  await main();
} finally {
  for (const cleanup of cleanups.reverse()) await cleanup();
}
