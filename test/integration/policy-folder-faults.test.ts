/**
 * A policy folder where one file breaks: the other files' changes still
 * apply, the broken file keeps its last good version in force (dropping it
 * could open what it denied), and the error is reported, naming the file.
 * Driven by editing the files on disk under a running control plane and
 * sidecars, over real mTLS.
 */
import { writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import t from 'tap';
import { request } from 'undici';
import { Logger } from '../../common/log.ts';
import {
  clientCredentials,
  eventually,
  mtlsAgent,
  ordersPolicyYaml,
  startEchoApp,
  startTestMesh,
  TESTER,
  untilReady,
} from '../helpers.ts';

const OTHER = 'spiffe://cluster.local/ns/default/sa/other';

/** billing's policy: /invoices to `allowed`. */
const billingPolicy = (allowed: string) => `
apiVersion: postern.dev/v1alpha1
kind: RoutePolicy
metadata: { name: billing-api, namespace: shop }
spec:
  selector: { matchLabels: { app: billing } }
  routes:
    - name: invoices
      match: { path: { prefix: /invoices } }
      allow:
        - principals: [${allowed}]
`;

t.test(
  'one broken file keeps its last good version while the other files apply, and the error names the file',
  async (t) => {
    const errors: { msg: string; fields: Record<string, unknown> }[] = [];
    const logger = new (class extends Logger {
      override error(msg: string, fields: Record<string, unknown> = {}) {
        errors.push({ msg, fields });
      }
    })('control-plane', { fd: 1, maxQueued: 0 });
    const mesh = await startTestMesh(t, '', { controlPlane: { logger } });
    const ordersFile = join(mesh.policiesDir, 'orders.yaml');
    const billingFile = join(mesh.policiesDir, 'billing.yaml');
    await writeFile(ordersFile, ordersPolicyYaml([TESTER]));
    await writeFile(billingFile, billingPolicy(TESTER));
    const app = await startEchoApp(t);
    const orders = await mesh.startSidecar({
      workload: 'orders',
      namespace: 'shop',
      appPort: app.port,
    });
    const billing = await mesh.startSidecar({
      workload: 'billing',
      namespace: 'shop',
      appPort: app.port,
    });
    await untilReady(orders.adminPort);
    await untilReady(billing.adminPort);
    const other = mtlsAgent(await clientCredentials(mesh.controlPlane.ca, OTHER));
    const tester = mtlsAgent(await clientCredentials(mesh.controlPlane.ca, TESTER));
    t.teardown(() => Promise.all([other.close(), tester.close()]));
    const status = async (port: number, path: string, agent = other) => {
      const res = await request(`https://127.0.0.1:${port}${path}`, { dispatcher: agent });
      await res.body.dump();
      return res.statusCode;
    };
    await eventually(async () => (await status(orders.inboundPort, '/orders', tester)) === 200);
    t.equal(await status(orders.inboundPort, '/orders'), 403, 'other is not yet allowed on orders');

    // In one edit: orders' file breaks (a bad method), billing's admits other.
    await writeFile(
      ordersFile,
      ordersPolicyYaml([TESTER, OTHER]).replace(
        'match: { path: { prefix: /orders } }',
        'match: { methods: [FETCH] }',
      ),
    );
    await writeFile(billingFile, billingPolicy(`${TESTER}, ${OTHER}`));
    await eventually(async () => (await status(billing.inboundPort, '/invoices')) === 200);
    t.pass('billing’s change applied');
    t.equal(
      await status(orders.inboundPort, '/orders'),
      403,
      'orders’ last good version still holds',
    );
    t.equal(await status(orders.inboundPort, '/orders', tester), 200);
    const reported = errors.find(
      (e) => e.msg === 'policy file rejected; its last good version stays in force',
    );
    t.ok(reported, 'the error is reported');
    t.equal(reported?.fields.file, ordersFile);
    t.match(
      String(reported?.fields.errors),
      /orders\.yaml: RoutePolicy shop\/orders-api: spec\.routes\[0\]\.match\.methods\[0\]/,
    );

    // Fixed: it applies.
    await writeFile(ordersFile, ordersPolicyYaml([TESTER, OTHER]));
    await eventually(async () => (await status(orders.inboundPort, '/orders')) === 200);
    t.pass('the fixed file applies');
  },
);
