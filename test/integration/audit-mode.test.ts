import t from 'tap';
import { request } from 'undici';
import { adminMetrics, ordersBehindSidecar } from '../helpers.ts';

t.test(
  'audit mode lets a request policy would deny through, telling the app, the log and the metrics',
  async (t) => {
    const { sidecar, agent } = await ordersBehindSidecar(
      t,
      `apiVersion: postern.dev/v1alpha1
kind: RoutePolicy
metadata: { name: orders-api, namespace: shop }
spec:
  selector: { matchLabels: { app: orders } }
  mode: audit
  routes:
    - name: orders
      match: { path: { prefix: /orders } }
      allow:
        - principals: [spiffe://cluster.local/ns/shop/sa/frontend]
`,
    );

    const res = await request(`https://127.0.0.1:${sidecar.inboundPort}/orders`, {
      dispatcher: agent,
    });
    t.equal(res.statusCode, 200, 'not blocked');
    const echoed = (await res.body.json()) as { headers: Record<string, string> };
    t.equal(
      echoed.headers['x-postern-audit'],
      'would-deny; policy=shop/orders-api; route=orders; reason=no-allow-rule-matched',
    );

    const metrics = await adminMetrics(sidecar.adminPort);
    t.match(metrics, /postern_authz_decisions_total\{decision="deny",mode="audit"\} 1/);
  },
);
