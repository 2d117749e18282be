import t from 'tap';
import { request } from 'undici';
import {
  clientCredentials,
  eventually,
  mtlsAgent,
  startEchoApp,
  startTestMesh,
} from '../helpers.ts';

const TESTER = 'spiffe://cluster.local/ns/default/sa/tester';

t.test(
  'routes chosen by header: matched as sent, and a repeated matched header is refused',
  async (t) => {
    const mesh = await startTestMesh(
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
    const app = await startEchoApp(t);
    const sidecar = await mesh.startSidecar({
      workload: 'orders',
      namespace: 'shop',
      appPort: app.port,
    });
    await eventually(
      async () =>
        (await request(`http://127.0.0.1:${sidecar.adminPort}/healthz/ready`)).statusCode === 200,
    );
    const agent = mtlsAgent(await clientCredentials(mesh.controlPlane.ca, TESTER));
    t.teardown(() => agent.close());
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
