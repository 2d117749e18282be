/**
 * Hostile requests over raw sockets, inbound (mTLS) and outbound (the app's
 * plain HTTP), with a policy that lets the caller do everything: the
 * request-smuggling and desync family, malformed framing, header floods and
 * Host confusion. For each case the sidecar answers exactly one 400 (405 for
 * CONNECT, 501 for a transfer coding but chunked, 431 for
 * headers too large), closes the connection, and the app receives no whole
 * request: none forwarded on a guess, and nothing smuggled behind it.
 */
import { readFile } from 'node:fs/promises';
import { connect as connectTls } from 'node:tls';
import t, { type Test } from 'tap';
import {
  clientCredentials,
  type EchoApp,
  OPEN_ORDERS_POLICY,
  type PemCredentials,
  shopSidecars,
  startEchoApp,
  startTestMesh,
  TESTER,
  untilReady,
} from '../helpers.ts';
import { collectUntilClosed, mtlsExchange, STILL_OPEN, tcpExchange } from '../raw-http.ts';
import { ORDERS_HTTP_ROUTE, startEdge } from './gateway-edge.ts';

/** Behind each case, a request the app must never see: had it been smuggled, it would. */
const SMUGGLED = 'GET /smuggled HTTP/1.1\r\nHost: orders\r\n\r\n';

interface HostileCase {
  readonly family: string;
  readonly name: string;
  /** The request head and body as sent, Host line included. */
  readonly raw: string;
  /** 400 unless said otherwise. */
  readonly status?: 400 | 405 | 431 | 501;
}

const headerFlood = (count: number) =>
  Array.from({ length: count }, (_, i) => `X-Flood-${i}: ${i}\r\n`).join('');

export const HOSTILE_CASES: readonly HostileCase[] = [
  // Content-Length and Transfer-Encoding fighting over the body's end.
  {
    family: 'CL.TE',
    name: 'Content-Length with Transfer-Encoding: chunked',
    raw: 'POST /orders HTTP/1.1\r\nHost: orders\r\nContent-Length: 6\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\nX',
  },
  {
    family: 'CL.TE',
    name: 'Transfer-Encoding first, then Content-Length',
    raw: 'POST /orders HTTP/1.1\r\nHost: orders\r\nTransfer-Encoding: chunked\r\nContent-Length: 3\r\n\r\n0\r\n\r\n',
  },
  // Transfer-Encoding spelled so that one parser sees chunked and another does not.
  {
    family: 'TE obfuscation',
    name: 'Transfer-Encoding: xchunked',
    raw: 'POST /orders HTTP/1.1\r\nHost: orders\r\nTransfer-Encoding: xchunked\r\n\r\n0\r\n\r\n',
    status: 501,
  },
  {
    family: 'TE obfuscation',
    name: 'a space before the colon',
    raw: 'POST /orders HTTP/1.1\r\nHost: orders\r\nTransfer-Encoding : chunked\r\n\r\n0\r\n\r\n',
  },
  {
    family: 'TE obfuscation',
    name: 'chunked not last: chunked, identity',
    raw: 'POST /orders HTTP/1.1\r\nHost: orders\r\nTransfer-Encoding: chunked, identity\r\n\r\n0\r\n\r\n',
  },
  {
    family: 'TE obfuscation',
    name: 'two Transfer-Encoding headers',
    raw: 'POST /orders HTTP/1.1\r\nHost: orders\r\nTransfer-Encoding: chunked\r\nTransfer-Encoding: x\r\n\r\n0\r\n\r\n',
  },
  {
    family: 'TE obfuscation',
    name: 'a coding before chunked: gzip, chunked',
    raw: 'POST /orders HTTP/1.1\r\nHost: orders\r\nTransfer-Encoding: gzip, chunked\r\n\r\n0\r\n\r\n',
    status: 501,
  },
  {
    family: 'TE obfuscation',
    name: 'a quoted value',
    raw: 'POST /orders HTTP/1.1\r\nHost: orders\r\nTransfer-Encoding: "chunked"\r\n\r\n0\r\n\r\n',
    status: 501,
  },
  {
    family: 'TE obfuscation',
    name: 'a vertical tab in the value',
    raw: 'POST /orders HTTP/1.1\r\nHost: orders\r\nTransfer-Encoding:\x0bchunked\r\n\r\n0\r\n\r\n',
  },
  {
    family: 'TE obfuscation',
    name: 'the name folded onto the line before (obs-fold)',
    raw: 'POST /orders HTTP/1.1\r\nHost: orders\r\nX-Pad: a\r\n Transfer-Encoding: chunked\r\n\r\n0\r\n\r\n',
  },
  // Content-Length that is not one decimal number.
  {
    family: 'Content-Length',
    name: 'two different Content-Length headers',
    raw: 'POST /orders HTTP/1.1\r\nHost: orders\r\nContent-Length: 3\r\nContent-Length: 4\r\n\r\nabcd',
  },
  {
    family: 'Content-Length',
    name: 'a list: Content-Length: 3, 4',
    raw: 'POST /orders HTTP/1.1\r\nHost: orders\r\nContent-Length: 3, 4\r\n\r\nabcd',
  },
  {
    family: 'Content-Length',
    name: 'a sign: +3',
    raw: 'POST /orders HTTP/1.1\r\nHost: orders\r\nContent-Length: +3\r\n\r\nabc',
  },
  {
    family: 'Content-Length',
    name: 'negative',
    raw: 'POST /orders HTTP/1.1\r\nHost: orders\r\nContent-Length: -1\r\n\r\n',
  },
  {
    family: 'Content-Length',
    name: 'hexadecimal',
    raw: 'POST /orders HTTP/1.1\r\nHost: orders\r\nContent-Length: 0x3\r\n\r\nabc',
  },
  {
    family: 'Content-Length',
    name: 'beyond 2^64',
    raw: 'POST /orders HTTP/1.1\r\nHost: orders\r\nContent-Length: 184467440737095516160\r\n\r\n',
  },
  // Line endings and control characters.
  {
    family: 'line endings',
    name: 'obs-fold in a header value',
    raw: 'GET /orders HTTP/1.1\r\nHost: orders\r\nX-Folded: a\r\n b\r\n\r\n',
  },
  {
    family: 'line endings',
    name: 'a bare CR in a header value',
    raw: 'GET /orders HTTP/1.1\r\nHost: orders\r\nX-Bad: a\rb\r\n\r\n',
  },
  {
    family: 'line endings',
    name: 'bare LF line endings',
    raw: 'GET /orders HTTP/1.1\nHost: orders\nX-Bad: a\n\n',
  },
  {
    family: 'line endings',
    name: 'a NUL in a header value',
    raw: 'GET /orders HTTP/1.1\r\nHost: orders\r\nX-Bad: a\x00b\r\n\r\n',
  },
  {
    family: 'line endings',
    name: 'whitespace inside a header name',
    raw: 'GET /orders HTTP/1.1\r\nHost: orders\r\nX Bad: a\r\n\r\n',
  },
  // Chunked bodies.
  {
    family: 'chunks',
    name: 'a chunk size that is not hexadecimal',
    raw: 'POST /orders HTTP/1.1\r\nHost: orders\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\nabc\r\n0\r\n\r\n',
  },
  {
    family: 'chunks',
    name: 'a chunk size that overflows 64 bits',
    raw: 'POST /orders HTTP/1.1\r\nHost: orders\r\nTransfer-Encoding: chunked\r\n\r\nfffffffffffffffff1\r\nabc\r\n0\r\n\r\n',
  },
  {
    family: 'chunks',
    name: 'a chunk extension with a control character',
    raw: 'POST /orders HTTP/1.1\r\nHost: orders\r\nTransfer-Encoding: chunked\r\n\r\n3;ext=\x01\r\nabc\r\n0\r\n\r\n',
  },
  {
    family: 'chunks',
    name: 'chunk data longer than its size',
    raw: 'POST /orders HTTP/1.1\r\nHost: orders\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabcdef\r\n0\r\n\r\n',
  },
  {
    family: 'chunks',
    name: 'a chunk size with a bare LF',
    raw: 'POST /orders HTTP/1.1\r\nHost: orders\r\nTransfer-Encoding: chunked\r\n\r\n3\nabc\r\n0\r\n\r\n',
  },
  // Versions.
  {
    family: 'versions',
    name: 'HTTP/1.0 with Transfer-Encoding: chunked',
    raw: 'POST /orders HTTP/1.0\r\nHost: orders\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n',
  },
  {
    family: 'versions',
    name: 'HTTP/1.1 without Host',
    raw: 'GET /orders HTTP/1.1\r\nX-Other: a\r\n\r\n',
  },
  {
    family: 'versions',
    name: 'an unknown version',
    raw: 'GET /orders HTTP/1.7\r\nHost: orders\r\n\r\n',
  },
  // A tunnel where only HTTP is routed: before, inbound and at the gateway, no answer at all.
  {
    family: 'versions',
    name: 'CONNECT',
    raw: 'CONNECT orders:443 HTTP/1.1\r\nHost: orders:443\r\n\r\n',
    status: 405,
  },
  // Host confusion.
  {
    family: 'Host',
    name: 'two Host headers',
    raw: 'GET /orders HTTP/1.1\r\nHost: orders\r\nHost: billing\r\n\r\n',
  },
  {
    family: 'Host',
    name: 'a path in Host',
    raw: 'GET /orders HTTP/1.1\r\nHost: orders/#.example.com\r\n\r\n',
  },
  {
    family: 'Host',
    name: 'a list: Host: a, b',
    raw: 'GET /orders HTTP/1.1\r\nHost: orders, billing\r\n\r\n',
  },
  // Floods.
  {
    family: 'floods',
    name: 'more than 100 header lines',
    raw: `GET /orders HTTP/1.1\r\nHost: orders\r\n${headerFlood(101)}\r\n`,
    status: 431,
  },
  {
    family: 'floods',
    name: 'a trailer section over 60 KiB',
    raw: `POST /orders HTTP/1.1\r\nHost: orders\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n0\r\nX-Big: ${'a'.repeat(61 * 1024)}\r\n\r\n`,
    status: 431,
  },
  {
    family: 'floods',
    name: 'a request head over 60 KiB',
    raw: `GET /orders HTTP/1.1\r\nHost: orders\r\nX-Big: ${'a'.repeat(61 * 1024)}\r\n\r\n`,
    status: 431,
  },
];

/**
 * The requests the app received whole since `index`. A request whose head
 * was sound but whose body turned out malformed (a bad chunk) was already on
 * its way, streamed as it came, as Envoy streams it: the app sees it cut off
 * (aborted, `complete` false), never a whole request the sender did not mean.
 */
async function completedSince(app: EchoApp, index: number): Promise<string[]> {
  // An aborted request is told so on the next turn of the loop.
  await new Promise((resolve) => setTimeout(resolve, 20));
  return app.requests
    .slice(index)
    .filter((req) => req.complete)
    .map((req) => `${req.method} ${req.url}`);
}

async function ordersAndFrontend(t: Test): Promise<{
  app: EchoApp;
  inbound: (raw: string) => Promise<string>;
  outbound: (raw: string) => Promise<string>;
}> {
  const mesh = await startTestMesh(t, OPEN_ORDERS_POLICY);
  const app = await startEchoApp(t);
  // frontend's app is never called: only orders' app sees requests.
  const { orders, frontend } = await shopSidecars(mesh, app.port);
  await untilReady(orders.adminPort);
  await untilReady(frontend.adminPort);
  const credentials: PemCredentials = await clientCredentials(mesh.controlPlane.ca, TESTER);
  return {
    app,
    inbound: (raw) => mtlsExchange(orders.inboundPort, credentials, raw),
    outbound: (raw) => tcpExchange(frontend.outboundPort, raw),
  };
}

t.test(
  'hostile requests: one 400 or 431, a closed connection, nothing reaches the app',
  async (t) => {
    const { app, inbound, outbound } = await ordersAndFrontend(t);
    // The frontend's outbound reaches orders only once orders is in its registry.
    for (let i = 0; i < 100; i++) {
      const ok = await outbound(
        'GET /orders HTTP/1.1\r\nHost: orders\r\nConnection: close\r\n\r\n',
      );
      if (ok.startsWith('HTTP/1.1 200')) break;
      await new Promise((resolve) => setTimeout(resolve, 100));
    }
    const results: Record<string, { passed: number; tried: number }> = {};
    for (const direction of ['inbound', 'outbound'] as const) {
      const send = direction === 'inbound' ? inbound : outbound;
      for (const hostile of HOSTILE_CASES) {
        const before = app.requests.length;
        const reply = await send(hostile.raw + SMUGGLED);
        const status = hostile.status ?? 400;
        const responses = reply.match(/HTTP\/1\.[01] \d{3}/g) ?? [];
        const checks = [
          t.match(
            reply,
            new RegExp(`^HTTP/1\\.1 ${status}`),
            `${direction}, ${hostile.family}: ${hostile.name}: ${status}`,
          ),
          t.equal(responses.length, 1, `${direction}, ${hostile.name}: one response`),
          t.notMatch(reply, STILL_OPEN, `${direction}, ${hostile.name}: the connection is closed`),
          t.same(
            await completedSince(app, before),
            [],
            `${direction}, ${hostile.name}: the app received no complete request`,
          ),
        ];
        const family = `${direction} ${hostile.family}`;
        results[family] ??= { passed: 0, tried: 0 };
        results[family].tried++;
        if (checks.every(Boolean)) results[family].passed++;
      }
    }
    t.comment(
      Object.entries(results)
        .map(([family, { passed, tried }]) => `${family}: ${passed}/${tried}`)
        .join('; '),
    );
    t.notOk(
      app.requests.some((req) => req.url === '/smuggled'),
      'no smuggled request ever reached the app',
    );
  },
);

t.test(
  'what is not hostile still works: pipelined requests are each answered, and an absolute-form target routes by its own host, not by Host',
  async (t) => {
    const { app, inbound, outbound } = await ordersAndFrontend(t);
    const two =
      'GET /orders/1 HTTP/1.1\r\nHost: orders\r\n\r\nGET /orders/2 HTTP/1.1\r\nHost: orders\r\nConnection: close\r\n\r\n';
    for (const send of [inbound, outbound]) {
      let reply = '';
      // The outbound listener knows orders once its snapshot lists it.
      for (let i = 0; i < 100 && !reply.startsWith('HTTP/1.1 200'); i++) {
        reply = await send(two);
        if (!reply.startsWith('HTTP/1.1 200')) await new Promise((r) => setTimeout(r, 100));
      }
      t.equal(reply.match(/HTTP\/1\.1 200/g)?.length, 2, 'both answered');
      t.notMatch(reply, STILL_OPEN);
    }
    t.same(
      app.requests.slice(-2).map((req) => req.url),
      ['/orders/1', '/orders/2'],
    );
    // RFC 9112, 3.2.2: a proxy given an absolute-form target ignores Host.
    const reply = await outbound(
      'GET http://billing/orders HTTP/1.1\r\nHost: orders\r\nConnection: close\r\n\r\n',
    );
    t.match(reply, /^HTTP\/1\.1 502/);
    t.match(reply, /billing is not in this workload's mesh registry/);
  },
);

t.test('the gateway listener refuses the same hostile requests the same way', async (t) => {
  const edge = await startEdge(t, {
    services: ['orders'],
    httpRoutes: ORDERS_HTTP_ROUTE,
  });
  const app = edge.apps.orders!;
  const ca = await readFile(edge.serverCa.cert, 'utf8');
  const send = (raw: string) =>
    collectUntilClosed(
      connectTls({
        host: '127.0.0.1',
        port: edge.port,
        ca,
        servername: 'shop.example.com',
        checkServerIdentity: () => undefined,
      }),
      raw,
      'secureConnect',
    );
  const ok = await send('GET /orders HTTP/1.1\r\nHost: orders\r\nConnection: close\r\n\r\n');
  t.match(ok, /^HTTP\/1\.1 200/, 'a sound request is routed');
  let passed = 0;
  for (const hostile of HOSTILE_CASES) {
    const before = app.requests.length;
    const reply = await send(hostile.raw + SMUGGLED);
    const status = hostile.status ?? 400;
    const checks = [
      t.match(
        reply,
        new RegExp(`^HTTP/1\\.1 ${status}`),
        `gateway, ${hostile.family}: ${hostile.name}: ${status}`,
      ),
      t.equal(
        reply.match(/HTTP\/1\.[01] \d{3}/g)?.length,
        1,
        `gateway, ${hostile.name}: one response`,
      ),
      t.notMatch(reply, STILL_OPEN, `gateway, ${hostile.name}: the connection is closed`),
      t.same(
        await completedSince(app, before),
        [],
        `gateway, ${hostile.name}: no complete request`,
      ),
    ];
    if (checks.every(Boolean)) passed++;
  }
  t.comment(`gateway: ${passed}/${HOSTILE_CASES.length}`);
  t.notOk(
    app.requests.some((req) => req.url === '/smuggled'),
    'nothing smuggled',
  );
});

t.test(
  'trailers never become headers, and the upstream request carries exactly one framing header',
  async (t) => {
    const { app, inbound, outbound } = await ordersAndFrontend(t);
    const chunked =
      'POST /orders HTTP/1.1\r\nHost: orders\r\nTransfer-Encoding: chunked\r\nTrailer: X-Evil, X-Postern-Principal\r\nConnection: close\r\n\r\n' +
      '5\r\nhello\r\n0\r\nX-Evil: 1\r\nX-Postern-Principal: spiffe://cluster.local/ns/kube-system/sa/admin\r\n\r\n';
    const sized =
      'POST /orders HTTP/1.1\r\nHost: orders\r\nContent-Length: 5\r\nConnection: close\r\n\r\nhello';
    for (const [direction, send] of [
      ['inbound', inbound],
      ['outbound', outbound],
    ] as const) {
      for (const raw of [chunked, sized]) {
        let reply = '';
        for (let i = 0; i < 100 && !reply.startsWith('HTTP/1.1 200'); i++) {
          reply = await send(raw);
          if (!reply.startsWith('HTTP/1.1 200')) await new Promise((r) => setTimeout(r, 100));
        }
        t.match(reply, /^HTTP\/1\.1 200/, `${direction}: answered`);
        const seen = app.requests.at(-1)!;
        const framing = ['content-length', 'transfer-encoding'].filter(
          (h) => seen.headers[h] !== undefined,
        );
        t.equal(framing.length, 1, `${direction}: one framing header (${framing.join(', ')})`);
        t.notOk('x-evil' in seen.headers, `${direction}: a trailer is not a header`);
        t.notMatch(
          String(seen.headers['x-postern-principal']),
          /kube-system/,
          `${direction}: nor an identity`,
        );
        t.same(
          Object.keys(seen.trailers ?? {}).filter((name) => name.startsWith('x-postern')),
          [],
          `${direction}: no sidecar-owned trailer reaches the app`,
        );
      }
    }
  },
);

t.test(
  'regression: pipelined requests on one connection are handled one at a time; a flood past 32 waiting is cut before reaching the app, and an Upgrade pipelined behind a request is never acted on',
  async (t) => {
    const { app, inbound, outbound } = await ordersAndFrontend(t);
    const flood = 'GET /orders/flood?delay=40 HTTP/1.1\r\nHost: orders\r\n\r\n'.repeat(100);
    const five = Array.from(
      { length: 5 },
      (_, i) =>
        `GET /orders/in-turn/${i}?delay=20 HTTP/1.1\r\nHost: orders\r\n${i === 4 ? 'Connection: close\r\n' : ''}\r\n`,
    ).join('');
    const upgradeBehind =
      'GET /orders/first?delay=100 HTTP/1.1\r\nHost: orders\r\n\r\n' +
      'GET /live HTTP/1.1\r\nHost: orders\r\nConnection: Upgrade\r\nUpgrade: websocket\r\nSec-WebSocket-Version: 13\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\r\n';
    for (const [direction, send] of [
      ['inbound', inbound],
      ['outbound', outbound],
    ] as const) {
      // The outbound listener knows orders once its snapshot lists it.
      for (let i = 0; i < 100; i++) {
        const ok = await send('GET /orders HTTP/1.1\r\nHost: orders\r\nConnection: close\r\n\r\n');
        if (ok.startsWith('HTTP/1.1 200')) break;
        await new Promise((resolve) => setTimeout(resolve, 100));
      }
      const inTurn = await send(five);
      t.equal(
        inTurn.match(/HTTP\/1\.1 200/g)?.length,
        5,
        `${direction}: five pipelined, five answered`,
      );
      t.same(
        [...inTurn.matchAll(/"url":"\/orders\/in-turn\/(\d)/g)].map((m) => m[1]),
        ['0', '1', '2', '3', '4'],
        `${direction}: in order`,
      );

      const before = app.requests.length;
      const flooded = send(flood);
      // Before: every pipelined request went to the app's pool at once, and
      // a caller on another connection waited behind all of them.
      const other = await send(
        'GET /orders/other HTTP/1.1\r\nHost: orders\r\nConnection: close\r\n\r\n',
      );
      t.match(other, /^HTTP\/1\.1 200/, `${direction}: another caller is answered`);
      const reply = await flooded;
      t.notMatch(reply, STILL_OPEN, `${direction}: the flooding connection is cut`);
      const floodSeen = app.requests
        .slice(before)
        .filter((req) => req.url?.startsWith('/orders/flood'));
      t.ok(floodSeen.length <= 1, `${direction}: the app saw ${floodSeen.length} of the flood`);

      const beforeUpgrade = app.requests.length;
      const behind = await send(upgradeBehind);
      t.equal(
        behind.match(/HTTP\/1\.1 \d{3}/g)?.length ?? 0,
        0,
        `${direction}: cut, no answer out of turn`,
      );
      t.notMatch(behind, STILL_OPEN);
      await new Promise((resolve) => setTimeout(resolve, 150));
      t.notOk(
        app.requests.slice(beforeUpgrade).some((req) => req.url === '/live'),
        `${direction}: the Upgrade behind it never reached the app`,
      );
    }
  },
);
