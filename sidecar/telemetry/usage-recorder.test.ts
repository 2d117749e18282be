import t from 'tap';
import type { UsageReport } from '../../common/usage.ts';
import { testLogger } from '../../test/helpers.ts';
import { pathSegment, UsageRecorder } from './usage-recorder.ts';

const FRONTEND = 'spiffe://cluster.local/ns/shop/sa/frontend';
const T0 = Date.parse('2026-11-26T10:00:00Z');

function recorder(options: { fail?: () => boolean } = {}) {
  let clock = T0 + 5_000;
  const sent: UsageReport[] = [];
  const usage = new UsageRecorder({
    source: { workload: 'orders', namespace: 'shop', pod: 'orders-1' },
    windowSeconds: 60,
    now: () => clock,
    send: async (report) => {
      if (options.fail?.()) throw new Error('control plane away');
      sent.push(report);
    },
    logger: testLogger('usage'),
  });
  return {
    usage,
    sent,
    advance: (ms: number) => {
      clock += ms;
    },
  };
}

const TRACE = '4bf92f3577b34da6a3ce929d0e0e4736';

t.test(
  "a window's requests are summed per caller, route, method and status, and sent when it ends",
  async (t) => {
    const { usage, sent, advance } = recorder();
    usage.inbound(FRONTEND, 'alice', 'get-order', 'GET', 200, 0, 500, '17', '10.0.1.5', TRACE);
    usage.inbound(FRONTEND, 'alice', 'get-order', 'GET', 200, 0, 700, '18', '10.0.1.6', undefined);
    usage.inbound(FRONTEND, 'alice', 'get-order', 'GET', 200, 0, 500, '17', '10.0.1.5', undefined);
    usage.inbound(
      undefined,
      undefined,
      '(no route)',
      'POST',
      403,
      20,
      0,
      undefined,
      undefined,
      undefined,
    );
    t.same(sent, [], 'nothing before the window ends');
    advance(60_000);
    usage.inbound(FRONTEND, undefined, 'get-order', 'GET', 200, 0, 1, '19', undefined, undefined);
    await new Promise((resolve) => setImmediate(resolve));
    t.same(sent, [
      {
        source: { workload: 'orders', namespace: 'shop', pod: 'orders-1' },
        window: { start: '2026-11-26T10:00:00.000Z', seconds: 60 },
        entries: [
          {
            direction: 'inbound',
            principal: FRONTEND,
            subject: 'alice',
            route: 'get-order',
            method: 'GET',
            status: 200,
            requests: 3,
            requestBytes: 0,
            responseBytes: 1700,
            distinctResources: 2,
            resourceIds: ['17', '18'],
            addresses: ['10.0.1.5', '10.0.1.6'],
            traceIds: [TRACE],
          },
          {
            direction: 'inbound',
            route: '(no route)',
            method: 'POST',
            status: 403,
            requests: 1,
            requestBytes: 20,
            responseBytes: 0,
          },
        ],
      },
    ]);
    await usage.close();
    t.equal(sent.length, 2, 'closing sends the window so far');
    t.equal(sent[1]!.window.start, '2026-11-26T10:01:00.000Z');
  },
);

t.test('a report the control plane did not take is sent again with the next', async (t) => {
  let away = true;
  const { usage, sent, advance } = recorder({ fail: () => away });
  usage.inbound(FRONTEND, undefined, 'r', 'GET', 200, 0, 1, undefined, undefined, undefined);
  advance(60_000);
  usage.inbound(FRONTEND, undefined, 'r', 'GET', 200, 0, 1, undefined, undefined, undefined);
  await new Promise((resolve) => setImmediate(resolve));
  t.same(sent, []);
  away = false;
  advance(60_000);
  usage.inbound(FRONTEND, undefined, 'r', 'GET', 200, 0, 1, undefined, undefined, undefined);
  await new Promise((resolve) => setImmediate(resolve));
  t.same(
    sent.map((r) => r.window.start),
    ['2026-11-26T10:00:00.000Z', '2026-11-26T10:01:00.000Z'],
    'nothing lost, in order',
  );
  await usage.close();
});

t.test("the app's attempts to leave the mesh are counted per host", async (t) => {
  const { usage, sent, advance } = recorder();
  usage.outbound('paste.evil.example:443', 5000, 0);
  usage.outbound('paste.evil.example:443', 7000, 0);
  advance(60_000);
  usage.outbound('api.partner.example:80', 1, 0);
  await new Promise((resolve) => setImmediate(resolve));
  t.same(sent[0]!.entries, [
    {
      direction: 'outbound',
      destination: 'paste.evil.example:443',
      requests: 2,
      requestBytes: 12_000,
      responseBytes: 0,
    },
  ]);
  await usage.close();
});

t.test('a path segment is found without splitting the path', async (t) => {
  t.equal(pathSegment('/orders/17', 2), '17');
  t.equal(pathSegment('/orders/17/items', 2), '17');
  t.equal(pathSegment('/orders/17', 1), 'orders');
  t.equal(pathSegment('/orders', 2), undefined);
  t.equal(pathSegment('/orders/', 2), undefined, 'an empty segment is no id');
});

t.test(
  'a window without requests is reported too, empty: it says where this pod runs',
  async (t) => {
    const { usage, sent, advance } = recorder();
    advance(60_000);
    // A request of the next window ends the quiet one.
    usage.inbound(FRONTEND, undefined, 'r', 'GET', 200, 0, 1, undefined, undefined, undefined);
    await new Promise((resolve) => setImmediate(resolve));
    t.match(sent, [{ window: { start: '2026-11-26T10:00:00.000Z' }, entries: [] }]);
    await usage.close();
  },
);
