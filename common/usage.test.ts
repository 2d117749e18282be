import t from 'tap';
import { parseUsageReport } from './usage.ts';

const REPORT = {
  source: { workload: 'orders', namespace: 'shop', pod: 'orders-7d9f-x2' },
  window: { start: '2026-11-23T10:00:00Z', seconds: 60 },
  entries: [
    {
      direction: 'inbound',
      principal: 'spiffe://cluster.local/ns/shop/sa/frontend',
      subject: 'user-1',
      route: 'get-order',
      method: 'GET',
      status: 200,
      requests: 120,
      requestBytes: 12000,
      responseBytes: 5400000,
      distinctResources: 2,
      resourceIds: ['17', '18'],
    },
    {
      direction: 'outbound',
      destination: 'api.partner.example:443',
      requests: 3,
      requestBytes: 1048576,
      responseBytes: 900,
    },
  ],
};

t.test("DESIGN.md's example is a usage report", async (t) => {
  t.same(parseUsageReport(REPORT), { ok: true, report: REPORT });
});

t.test('what is wrong with a report is said by JSON path', async (t) => {
  const bad = {
    ...REPORT,
    window: { start: 'yesterday', seconds: 60 },
  };
  t.same(parseUsageReport(bad), {
    ok: false,
    problems: ['/window/start: expected an RFC 3339 date-time'],
  });
  const worse = parseUsageReport({
    source: { workload: 'orders' },
    window: { start: '2026-11-23T10:00:00Z', seconds: 0 },
    entries: [
      { direction: 'inbound', route: 'r', requests: -1, requestBytes: 0, responseBytes: 0 },
    ],
  });
  t.equal(worse.ok, false);
  const text = worse.ok ? '' : worse.problems.join('\n');
  t.match(text, /\/source\/namespace/);
  t.match(text, /\/window\/seconds/);
  t.match(text, /\/entries\/0/);
});
