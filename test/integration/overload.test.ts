/**
 * Overload, end to end: while the sidecar's guard reads an overloaded
 * process, new requests inbound and outbound get 503 with Retry-After at
 * once (nothing forwarded), the admin endpoints answer and say why, and
 * when the load falls the sidecar takes requests again by itself. The
 * readings stand in for the process's (a lagging loop cannot be made on
 * demand in a test process that also runs the test); sidecar/overload.test.ts
 * shows the real reading seeing a lagging loop.
 */
import t from 'tap';
import { request } from 'undici';
import type { LoadReading } from '../../sidecar/overload.ts';
import {
  clientCredentials,
  eventually,
  mtlsAgent,
  OPEN_ORDERS_POLICY,
  startEchoApp,
  startTestMesh,
  untilReady,
} from '../helpers.ts';

const TESTER = 'spiffe://cluster.local/ns/default/sa/tester';

t.test(
  'an overloaded sidecar sheds new requests with 503 and Retry-After, and recovers by itself',
  async (t) => {
    const mesh = await startTestMesh(t, OPEN_ORDERS_POLICY);
    const app = await startEchoApp(t);
    let load: LoadReading = { lagMs: 2, heapRatio: 0.3 };
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

    load = { lagMs: 400, heapRatio: 0.3 };
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

    load = { lagMs: 120, heapRatio: 0.3 };
    await new Promise((resolve) => setTimeout(resolve, 600));
    t.equal((await inbound()).status, 503, 'between the marks it keeps shedding (no flapping)');

    load = { lagMs: 5, heapRatio: 0.95 };
    await new Promise((resolve) => setTimeout(resolve, 600));
    t.equal((await inbound()).status, 503, 'a heap near its limit sheds as well');

    load = { lagMs: 3, heapRatio: 0.4 };
    await eventually(async () => !(await overload()).shedding);
    t.equal((await inbound()).status, 200, 'recovered by itself');
    t.equal(await outbound(), 200);
  },
);
