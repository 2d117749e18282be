import t from 'tap';
import { type Dispatcher, request } from 'undici';
import type { UsageReport } from '../../common/usage.ts';
import { FRONTEND, inbound, report } from '../../control-plane/detection/test-fixtures.ts';
import { clientCredentials, mtlsAgent, startTestMesh, workloadCredentials } from '../helpers.ts';

const OPERATOR = 'spiffe://cluster.local/ns/postern-system/sa/operator';
const STRANGER = 'spiffe://cluster.local/ns/batch/sa/reporter';

t.test('usage reports in over SVIDs, alerts out to operators', async (t) => {
  // The detectors learn for no time here, so that a new caller is news at once.
  const mesh = await startTestMesh(t, '', { controlPlane: { detectionLearningMs: 0 } });
  const ca = mesh.controlPlane.ca;
  const orders = mtlsAgent(await workloadCredentials(ca, 'orders', 'shop'));
  const frontend = mtlsAgent(await workloadCredentials(ca, 'frontend', 'shop'));
  const operator = mtlsAgent(await clientCredentials(ca, OPERATOR));
  const anonymous = mtlsAgent({ ca: ca.bundlePem });
  t.teardown(() => Promise.all([orders, frontend, operator, anonymous].map((a) => a.close())));

  const post = async (body: unknown, dispatcher: Dispatcher = orders) => {
    const response = await request(`${mesh.controlPlaneUrl}/v1/usage`, {
      method: 'POST',
      dispatcher,
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify(body),
    });
    return { status: response.statusCode, body: await response.body.text() };
  };
  const alerts = async (dispatcher: Dispatcher = operator, query = '') => {
    const response = await request(`${mesh.controlPlaneUrl}/v1/alerts${query}`, { dispatcher });
    return {
      status: response.statusCode,
      body: (await response.body.json()) as Record<string, unknown>,
    };
  };

  t.test('a sidecar reports for its own workload only', async (t) => {
    const own: UsageReport = report(0, 'orders-1', [inbound(FRONTEND, 1000)]);
    t.equal((await post(own)).status, 204);
    const forged = await post(own, frontend);
    t.equal(forged.status, 403);
    t.match(forged.body, 'was issued for shop/frontend; it cannot report for shop/orders');
    t.equal((await post(own, anonymous)).status, 401, 'no SVID, no report');
    const bad = await post({ ...own, window: { start: 'now', seconds: 300 } });
    t.equal(bad.status, 400);
    t.match(bad.body, 'not a usage report: /window/start: expected an RFC 3339 date-time');
  });

  t.test(
    'the replicas meet in the detectors, and their alerts are listed newest first',
    async (t) => {
      await post(report(1, 'orders-2', [inbound(STRANGER, 500)]));
      // Window 1 closes once reports are a window past it.
      await post(report(3, 'orders-1', [inbound(FRONTEND, 1000)]));
      const listed = await alerts();
      t.equal(listed.status, 200);
      // With no learning, the first caller was news too: two alerts, the newest first.
      t.match(listed.body, {
        alerts: [
          {
            detector: 'novelty',
            principal: STRANGER,
            workload: 'shop/orders',
            route: 'get-order',
            windowStart: '2026-11-01T00:05:00.000Z',
          },
          { detector: 'novelty', principal: FRONTEND, windowStart: '2026-11-01T00:00:00.000Z' },
        ],
        total: 2,
      });
      t.equal(((await alerts(operator, '?limit=1')).body.alerts as unknown[]).length, 1);
      t.equal((await alerts(orders)).status, 403, 'for operators only');
      t.equal((await alerts(operator, '?limit=0')).status, 400);
    },
  );
});
