import { writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import t from 'tap';
import { Agent, request } from 'undici';
import type { RoutePolicy } from '../../common/policy/schema.ts';
import {
  adminConfig,
  clientCredentials,
  eventually,
  mtlsAgent,
  ordersPolicyYaml,
  startEchoApp,
  startTestMesh,
  TESTER,
} from '../helpers.ts';

t.test('snapshot swaps under traffic', async (t) => {
  const mesh = await startTestMesh(t, ordersPolicyYaml([TESTER]));
  const app = await startEchoApp(t);
  const sidecar = await mesh.startSidecar({
    workload: 'orders',
    namespace: 'shop',
    appPort: app.port,
  });
  const config = () => adminConfig(sidecar.adminPort);
  await eventually(async () => (await config()).version !== null);
  const tester = mtlsAgent(await clientCredentials(mesh.controlPlane.ca, TESTER));
  t.teardown(() => tester.close());
  const get = async (path: string) => {
    const res = await request(`https://127.0.0.1:${sidecar.inboundPort}${path}`, {
      dispatcher: tester,
    });
    await res.body.dump();
    return res.statusCode;
  };

  await t.test(
    'a request in flight when the snapshot changes completes; the next one sees the new policy',
    async (t) => {
      const inFlight = get('/orders?delay=600');
      await eventually(() => app.requests.some((r) => r.url?.includes('delay=600')));
      const before = (await config()).version;
      await writeFile(
        join(mesh.policiesDir, 'policies.yaml'),
        ordersPolicyYaml(['spiffe://cluster.local/ns/default/sa/someone-else']),
      );
      await eventually(async () => (await config()).version !== before);
      t.equal(await inFlight, 200, 'the in-flight request was not dropped');
      t.equal(await get('/orders'), 403, 'the new snapshot is enforced');
      await writeFile(join(mesh.policiesDir, 'policies.yaml'), ordersPolicyYaml([TESTER]));
      await eventually(async () => (await get('/orders')) === 200);
    },
  );

  await t.test(
    'an invalid snapshot is rejected (nacked), and the sidecar stays on its last good one',
    async (t) => {
      const good = await config();
      // The control plane validates what it loads, so a bad snapshot only comes
      // from a control-plane bug or version skew; inject one past its checks.
      const invalid = {
        apiVersion: 'postern.dev/v1alpha1',
        kind: 'RoutePolicy',
        metadata: { name: 'orders-api', namespace: 'shop' },
        spec: { routes: [{ name: 'Not A Valid Name', allow: [{ principals: ['everyone'] }] }] },
      } as unknown as RoutePolicy;
      mesh.controlPlane.hub.setPolicies([invalid]);
      const ops = new Agent({
        connect: await clientCredentials(
          mesh.controlPlane.ca,
          'spiffe://cluster.local/ns/postern-system/sa/operator',
        ),
      });
      t.teardown(() => ops.close());
      let rejection: { status: string; reason?: string; version: string } | undefined;
      await eventually(async () => {
        const res = await request(`${mesh.controlPlaneUrl}/v1/acks`, { dispatcher: ops });
        const body = (await res.body.json()) as {
          acks: { workload: string; status: string; reason?: string; version: string }[];
        };
        rejection = body.acks.find((a) => a.workload === 'orders' && a.status === 'rejected');
        return rejection !== undefined;
      });
      t.match(
        rejection!.reason,
        /RoutePolicy shop\/orders-api: spec\.routes\[0\]\.name: expected a DNS label/,
      );
      const after = await config();
      t.equal(after.version, good.version, 'the applied version did not move');
      t.equal(after.snapshot?.hash, good.snapshot?.hash);
      t.equal(await get('/orders'), 200, 'the last good policy is still enforced');
    },
  );
});
