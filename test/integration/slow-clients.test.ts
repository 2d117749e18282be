/**
 * Slow and stuck clients and upstreams are cut off by the listener and
 * upstream limits (common/connection-limits.ts), over real sockets, with
 * the limits shortened to fractions of a second so the test takes seconds
 * (the defaults are Envoy's: 5 s handshakes, 10 s headers, 5 min idle
 * streams; `--limits` changes them). What these cost in memory and file
 * descriptors under thousands of such connections is measured by
 * `npm run slow-clients` (load-tests/slow-clients.ts), not here.
 */
import { createServer as createHttpServer } from 'node:http';
import { connect as connectTcp, type Socket } from 'node:net';
import { connect as connectTls, type TLSSocket } from 'node:tls';
import t from 'tap';
import {
  clientCredentials,
  OPEN_ORDERS_POLICY,
  type PemCredentials,
  startEchoApp,
  startTestMesh,
  TESTER,
  untilReady,
} from '../helpers.ts';
import { collectUntilClosed, mtlsExchange, STILL_OPEN } from '../raw-http.ts';
import { ORDERS_HTTP_ROUTE, startEdge } from './gateway-edge.ts';

const SHORT = {
  handshakeTimeoutMs: 400,
  headersTimeoutMs: 400,
  // Longer than the response timeout: undici checks its timers about once a second.
  streamIdleTimeoutMs: 1_500,
  idleTimeoutMs: 400,
};

/**
 * Resolves with how long `socket` stays open from now, in ms, reading (and
 * dropping) what arrives: a socket that does not read cannot see the close
 * (rejects after `limitMs`).
 */
function closedWithin(socket: Socket, limitMs: number): Promise<number> {
  const since = performance.now();
  socket.resume();
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => {
      socket.destroy();
      reject(new Error(`still open after ${limitMs} ms`));
    }, limitMs);
    socket.on('error', () => {});
    socket.on('close', () => {
      clearTimeout(timer);
      resolve(performance.now() - since);
    });
  });
}

function tlsTo(port: number, credentials: PemCredentials): Promise<TLSSocket> {
  return new Promise((resolve, reject) => {
    const socket = connectTls({
      host: '127.0.0.1',
      port,
      ...credentials,
      checkServerIdentity: () => undefined,
    });
    socket.once('secureConnect', () => resolve(socket));
    socket.once('error', reject);
  });
}

/** A ClientHello record that announces 512 bytes and sends 5: how long the server holds it, and what it wrote. */
async function stalledHandshake(port: number): Promise<{ open: number; received: number }> {
  const socket = connectTcp(port, '127.0.0.1');
  await new Promise((resolve) => socket.once('connect', resolve));
  let received = 0;
  socket.on('data', (chunk: Buffer) => {
    received += chunk.length;
  });
  socket.write(Buffer.from([0x16, 0x03, 0x01, 0x02, 0x00, 0x01, 0x00, 0x01, 0xfc, 0x03]));
  const open = await closedWithin(socket, 5_000);
  return { open, received };
}

t.test('slow and stuck peers are cut off by the limits, answered where HTTP allows', async (t) => {
  const mesh = await startTestMesh(t, OPEN_ORDERS_POLICY);
  const app = await startEchoApp(t);
  const orders = await mesh.startSidecar({
    workload: 'orders',
    namespace: 'shop',
    appPort: app.port,
    inboundLimits: SHORT,
    outboundLimits: SHORT,
    upstreamLimits: { responseTimeoutMs: 500 },
  });
  await untilReady(orders.adminPort);
  const credentials = await clientCredentials(mesh.controlPlane.ca, TESTER);

  await t.test('a TLS handshake that never starts: closed at the handshake timeout', async (t) => {
    const socket = connectTcp(orders.inboundPort, '127.0.0.1');
    const open = await closedWithin(socket, 3_000);
    t.ok(open >= 300, `held ${open.toFixed(0)} ms, not cut at once`);
  });

  await t.test(
    'regression: a TLS handshake that starts and stalls is cut at the handshake timeout, with no HTTP answer written into it',
    async (t) => {
      const { open, received } = await stalledHandshake(orders.inboundPort);
      // Before: answered with an HTTP 400 it could not encrypt, and held 2 s more for it.
      t.ok(open >= 300 && open < 1_500, `cut after ${open.toFixed(0)} ms`);
      t.equal(received, 0, 'nothing written');
    },
  );

  await t.test('request headers that never finish: 408 and closed', async (t) => {
    const text = await mtlsExchange(
      orders.inboundPort,
      credentials,
      'GET /orders HTTP/1.1\r\nHost: orders\r\nX-Slow: ',
    );
    t.match(text, /^HTTP\/1\.1 408/);
    t.notMatch(text, STILL_OPEN);
  });

  await t.test(
    'a body that stops half-way: the connection is cut, the app sees it aborted',
    async (t) => {
      const before = app.requests.length;
      const socket = await tlsTo(orders.inboundPort, credentials);
      socket.write(
        'POST /orders HTTP/1.1\r\nHost: orders\r\nContent-Length: 100\r\n\r\n0123456789',
      );
      await closedWithin(socket, 5_000);
      const seen = app.requests.slice(before);
      t.equal(seen.length, 1, 'the request had started');
      t.notOk(seen[0]!.complete, 'and never completed');
    },
  );

  await t.test('an app that does not answer: 504 at the response timeout', async (t) => {
    const socket = await tlsTo(orders.inboundPort, credentials);
    const reply = collectUntilClosed(
      socket,
      'GET /orders?delay=3000 HTTP/1.1\r\nHost: orders\r\nConnection: close\r\n\r\n',
      'ready',
    );
    const started = performance.now();
    socket.emit('ready');
    const text = await reply;
    t.match(text, /^HTTP\/1\.1 504/);
    t.match(text, /POSTERN_UPSTREAM_TIMEOUT/);
    t.ok(performance.now() - started < 2_500, 'before the app would have answered');
  });

  await t.test(
    'an app that stops reading a large response on the outbound listener: cut when the stream goes idle',
    async (t) => {
      // Plain TCP, where pausing stops the reads for real (a paused TLS
      // socket goes on decrypting into memory), so the sidecar's writes stall.
      const size = 64 * 1024 * 1024; // far more than socket buffers hold
      const socket = connectTcp(orders.outboundPort, '127.0.0.1');
      await new Promise((resolve) => socket.once('connect', resolve));
      socket.write(`GET /orders?size=${size} HTTP/1.1\r\nHost: orders\r\n\r\n`);
      socket.pause();
      // A paused socket cannot see the close either: after a while it reads
      // what was sent before the cut, then the end.
      await new Promise((resolve) => setTimeout(resolve, 6_000));
      let received = 0;
      socket.on('data', (chunk: Buffer) => {
        received += chunk.length;
      });
      socket.resume();
      await closedWithin(socket, 5_000);
      t.ok(
        received < size / 2,
        `cut after ${(received / 2 ** 20).toFixed(1)} MiB of ${size / 2 ** 20}`,
      );
    },
  );

  await t.test('a keep-alive connection left idle: closed at the idle timeout', async (t) => {
    const socket = await tlsTo(orders.inboundPort, credentials);
    socket.write('GET /orders HTTP/1.1\r\nHost: orders\r\n\r\n');
    // Node closes an idle keep-alive connection 1 s after keepAliveTimeout (its keepAliveTimeoutBuffer).
    const open = await closedWithin(socket, 3_000);
    t.ok(open >= 300, `served, then held ${open.toFixed(0)} ms idle`);
  });

  await t.test('the outbound listener holds the app to the same limits', async (t) => {
    const socket = connectTcp(orders.outboundPort, '127.0.0.1');
    const reply = collectUntilClosed(
      socket,
      'GET /orders HTTP/1.1\r\nHost: orders\r\nX-Slow: ',
      'connect',
    );
    const text = await reply;
    t.match(text, /^HTTP\/1\.1 408/);
  });
});

t.test(
  'a pooled connection to the app left idle is closed by the sidecar at its keep-alive timeout',
  async (t) => {
    const mesh = await startTestMesh(t, OPEN_ORDERS_POLICY);
    const app = await startEchoApp(t);
    const orders = await mesh.startSidecar({
      workload: 'orders',
      namespace: 'shop',
      appPort: app.port,
      upstreamLimits: { keepAliveTimeoutMs: 300 },
    });
    await untilReady(orders.adminPort);
    const credentials = await clientCredentials(mesh.controlPlane.ca, TESTER);
    // From the app's answer to its connection closing: the idle time the sidecar allowed.
    const closed = new Promise<number>((resolve) => {
      app.server.once('request', (req, res) => {
        res.once('finish', () => {
          const answered = performance.now();
          req.socket.once('close', () => resolve(performance.now() - answered));
        });
      });
    });
    t.match(
      await mtlsExchange(
        orders.inboundPort,
        credentials,
        'GET /orders HTTP/1.1\r\nHost: orders\r\nConnection: close\r\n\r\n',
      ),
      /^HTTP\/1\.1 200/,
    );
    // The app says Keep-Alive: timeout=5 (Node's default); the sidecar's own, shorter, wins.
    const idle = await closed;
    t.ok(
      idle >= 200 && idle < 2_000,
      `the app's connection idled ${idle.toFixed(0)} ms, then the sidecar closed it`,
    );
  },
);

t.test('the gateway listener cuts a stalled TLS handshake at its handshake timeout', async (t) => {
  const edge = await startEdge(t, {
    services: ['orders'],
    httpRoutes: ORDERS_HTTP_ROUTE,
    gateway: { limits: { handshakeTimeoutMs: 400 } },
  });
  const { open, received } = await stalledHandshake(edge.port);
  t.ok(open >= 300 && open < 1_500, `cut after ${open.toFixed(0)} ms`);
  t.equal(received, 0, 'nothing written');
});

t.test(
  'regression: a WebSocket tunnel nobody uses is cut at the stream idle timeout, on both sides of both sidecars',
  async (t) => {
    const mesh = await startTestMesh(t, OPEN_ORDERS_POLICY);
    // An app that accepts every upgrade and then says nothing.
    const appSockets: Socket[] = [];
    const app = createHttpServer().on('upgrade', (_req, socket: Socket) => {
      appSockets.push(socket);
      socket.on('error', () => {});
      socket.write(
        'HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\r\n',
      );
    });
    await new Promise<void>((resolve) => app.listen(0, '127.0.0.1', resolve));
    t.teardown(() => {
      for (const socket of appSockets) socket.destroy();
      app.close();
    });
    const limits = { streamIdleTimeoutMs: 1_000 };
    const orders = await mesh.startSidecar({
      workload: 'orders',
      namespace: 'shop',
      appPort: (app.address() as { port: number }).port,
      inboundLimits: limits,
      outboundLimits: limits,
    });
    await untilReady(orders.adminPort);
    // Through the outbound listener to orders' inbound and on to the app: two tunnels.
    let opened = '';
    let socket: Socket | undefined;
    for (let i = 0; i < 50 && !opened.startsWith('HTTP/1.1 101'); i++) {
      socket?.destroy();
      socket = connectTcp(orders.outboundPort, '127.0.0.1');
      socket.on('error', () => {});
      opened = '';
      socket.on('data', (chunk) => {
        opened += chunk;
      });
      socket.write(
        'GET /live HTTP/1.1\r\nHost: orders\r\nConnection: Upgrade\r\nUpgrade: websocket\r\nSec-WebSocket-Version: 13\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\r\n',
      );
      await new Promise((resolve) => setTimeout(resolve, 200));
    }
    t.match(opened, /^HTTP\/1\.1 101/, 'the tunnel is up');
    socket!.removeAllListeners('data');
    const open = await closedWithin(socket!, 6_000);
    t.ok(open >= 700, `the idle tunnel was cut after ${open.toFixed(0)} ms`);
    await new Promise((resolve) => setTimeout(resolve, 200));
    t.ok(
      appSockets.length > 0 && appSockets.every((s) => s.destroyed || s.readableEnded),
      "and the app's end of it closed too",
    );

    // Straight to the inbound listener (mTLS): its own timer, not the outbound one's, cuts it.
    const direct = await tlsTo(
      orders.inboundPort,
      await clientCredentials(mesh.controlPlane.ca, TESTER),
    );
    const upgraded = new Promise<string>((resolve) =>
      direct.once('data', (chunk) => resolve(String(chunk))),
    );
    direct.write(
      'GET /live HTTP/1.1\r\nHost: orders\r\nConnection: Upgrade\r\nUpgrade: websocket\r\nSec-WebSocket-Version: 13\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\r\n',
    );
    t.match(await upgraded, /^HTTP\/1\.1 101/, 'a tunnel straight through inbound is up');
    const directOpen = await closedWithin(direct, 6_000);
    t.ok(directOpen >= 700, `and cut after ${directOpen.toFixed(0)} ms idle`);
  },
);
