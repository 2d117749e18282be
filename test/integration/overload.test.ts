/**
 * Overload, end to end: while the sidecar's guard reads an overloaded
 * process, new requests inbound and outbound get 503 with Retry-After at
 * once (nothing forwarded), the admin endpoints answer and say why, and
 * when the load falls the sidecar takes requests again by itself. The first
 * test's readings stand in for the process's (a lagging loop cannot be made
 * on demand in a test process that also runs the test; sidecar/overload.test.ts
 * shows the real reading seeing a lagging loop); the second fills a real
 * sidecar process's memory with streams whose readers stopped.
 */
import { connect as connectTcp, type Socket } from 'node:net';
import t from 'tap';
import { request } from 'undici';
import { DEFAULT_OVERLOAD, type LoadReading } from '../../sidecar/overload.ts';
import {
  clientCredentials,
  eventually,
  mtlsAgent,
  OPEN_ORDERS_POLICY,
  spawnSidecar,
  startEchoApp,
  startTestMesh,
  TESTER,
  untilReady,
  workloadEnv,
} from '../helpers.ts';

t.test(
  'an overloaded sidecar sheds new requests with 503 and Retry-After, and recovers by itself',
  async (t) => {
    const mesh = await startTestMesh(t, OPEN_ORDERS_POLICY);
    const app = await startEchoApp(t);
    let load: LoadReading = { lagMs: 2, memoryRatio: 0.3 };
    const orders = await mesh.startSidecar({
      workload: 'orders',
      namespace: 'shop',
      appPort: app.port,
      loadSource: { read: () => load },
    });
    await untilReady(orders.adminPort);
    const agent = mtlsAgent(await clientCredentials(mesh.controlPlane.ca, TESTER));
    t.teardown(() => agent.close());
    const inbound = async () => {
      const res = await request(`https://127.0.0.1:${orders.inboundPort}/orders`, {
        dispatcher: agent,
      });
      return {
        status: res.statusCode,
        retryAfter: res.headers['retry-after'],
        body: await res.body.text(),
      };
    };
    const outbound = async () => {
      const res = await request(`http://127.0.0.1:${orders.outboundPort}/orders`, {
        headers: { host: 'orders' },
      });
      await res.body.dump();
      return res.statusCode;
    };
    const overload = async () =>
      (
        (await (await request(`http://127.0.0.1:${orders.adminPort}/stats`)).body.json()) as {
          overload: { shedding: boolean; lagMs: number; refused: number };
        }
      ).overload;

    t.equal((await inbound()).status, 200);
    await eventually(async () => (await outbound()) === 200);

    load = { lagMs: 400, memoryRatio: 0.3 };
    await eventually(async () => (await overload()).shedding);
    const before = app.requests.length;
    const shed = await inbound();
    t.equal(shed.status, 503);
    t.equal(shed.retryAfter, '1');
    t.match(JSON.parse(shed.body), { error: { code: 'POSTERN_OVERLOADED' } });
    t.equal(await outbound(), 503, 'the app’s own calls out are shed too');
    t.equal(app.requests.length, before, 'nothing was forwarded');
    t.match(
      await overload(),
      { shedding: true, lagMs: 400, refused: 2 },
      'the admin port answers and says why',
    );

    load = { lagMs: 120, memoryRatio: 0.3 };
    await new Promise((resolve) => setTimeout(resolve, 600));
    t.equal((await inbound()).status, 503, 'between the marks it keeps shedding (no flapping)');

    load = { lagMs: 5, memoryRatio: 0.95 };
    await new Promise((resolve) => setTimeout(resolve, 600));
    t.equal((await inbound()).status, 503, 'a heap near its limit sheds as well');

    load = { lagMs: 3, memoryRatio: 0.4 };
    await eventually(async () => !(await overload()).shedding);
    t.equal((await inbound()).status, 200, 'recovered by itself');
    t.equal(await outbound(), 200);
  },
);

t.test(
  'a sidecar process whose memory nears its limit sheds new requests, answers on its admin port, and recovers once the memory is let go',
  async (t) => {
    const mesh = await startTestMesh(t, OPEN_ORDERS_POLICY);
    const app = await startEchoApp(t);
    const orders = await spawnSidecar(t, {
      ...(await workloadEnv(mesh, 'orders', app.port)),
      // As a container limit would: what an idle sidecar holds is well under 90% of it.
      POSTERN_LIMITS: 'memory-limit=72Mi',
    });
    await untilReady(orders.adminPort);
    const stats = async () =>
      (
        (await (await request(`http://127.0.0.1:${orders.adminPort}/stats`)).body.json()) as {
          overload: { shedding: boolean; memoryRatio: number; refused: number };
        }
      ).overload;
    const outbound = async (path: string) => {
      const res = await request(`http://127.0.0.1:${orders.outboundPort}${path}`, {
        headers: { host: 'orders' },
      });
      await res.body.dump();
      return { status: res.statusCode, retryAfter: res.headers['retry-after'] };
    };
    await eventually(async () => (await outbound('/orders')).status === 200);
    await new Promise((resolve) => setTimeout(resolve, 1_000));
    const idle = await stats();
    t.ok(
      idle.memoryRatio < DEFAULT_OVERLOAD.memoryRecover,
      `idle, the sidecar holds ${idle.memoryRatio} of its limit`,
    );

    // Requests the app holds, each with a large head: live memory in the
    // sidecar (the request as received and as sent on) until it is answered
    // or its client goes.
    const held: Socket[] = [];
    t.teardown(() => {
      for (const socket of held) socket.destroy();
    });
    // Under the 16 KiB head a Node app takes.
    const pad = 'x'.repeat(12 * 1024);
    const hold = (count: number) => {
      for (let i = 0; i < count; i++) {
        const socket = connectTcp(orders.outboundPort, '127.0.0.1');
        socket.on('error', () => {});
        socket.write(`GET /orders?delay=30000 HTTP/1.1\r\nHost: orders\r\nX-Pad: ${pad}\r\n\r\n`);
        held.push(socket);
      }
    };
    while (!(await stats()).shedding && held.length < 1_000) {
      hold(50);
      await new Promise((resolve) => setTimeout(resolve, 300));
    }
    // Well past the mark, so that what a collection frees does not take it back under.
    hold(100);
    await new Promise((resolve) => setTimeout(resolve, 1_000));
    const full = await stats();
    t.ok(
      full.shedding,
      `shedding with ${held.length} requests held (${full.memoryRatio} of the limit held)`,
    );
    const shed = await outbound('/orders');
    t.equal(shed.status, 503, 'a new request is refused');
    t.equal(shed.retryAfter, '1', 'with Retry-After');

    for (const socket of held) socket.destroy();
    await eventually(async () => !(await stats()).shedding, 30_000);
    t.equal((await outbound('/orders')).status, 200, 'taking requests again by itself');
  },
);
