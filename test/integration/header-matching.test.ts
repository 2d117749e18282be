import t from 'tap';
import { request } from 'undici';
import { ordersBehindSidecar } from '../helpers.ts';

t.test(
  'routes chosen by header: matched as sent, and a repeated matched header is refused',
  async (t) => {
    const { sidecar, app, agent } = await ordersBehindSidecar(
      t,
      `apiVersion: postern.dev/v1alpha1
kind: RoutePolicy
metadata: { name: orders-api, namespace: shop }
spec:
  selector: { matchLabels: { app: orders } }
  routes:
    - name: any-tenant
      match: { path: { prefix: /orders } }
      allow:
        - principals: ["*"]
    - name: tenant-a
      match: { path: { prefix: /orders }, headers: [{ name: X-Tenant, exact: a }] }
      deny:
        - principals: ["*"]
`,
    );
    const status = async (headers: string[]) => {
      const res = await request(`https://127.0.0.1:${sidecar.inboundPort}/orders`, {
        dispatcher: agent,
        headers,
      });
      await res.body.dump();
      return res.statusCode;
    };
    t.equal(await status(['x-tenant', 'a']), 403, 'tenant a is denied');
    t.equal(await status(['x-tenant', 'b']), 200, 'tenant b is allowed');
    const before = app.requests.length;
    // Node would join these to "a, a" (no longer "a"); an app reading the first copy would see "a".
    t.equal(
      await status(['x-tenant', 'a', 'X-Tenant', 'a']),
      400,
      'a repeated matched header is refused',
    );
    t.equal(app.requests.length, before, 'and never forwarded');
    t.equal(
      await status(['x-other', '1', 'x-other', '2']),
      200,
      'repeating a header no route matches on is fine',
    );
  },
);
