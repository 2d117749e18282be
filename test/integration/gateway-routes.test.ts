import { writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import t from 'tap';
import { adminConfig, eventually, startEchoApp, startTestMesh, untilReady } from '../helpers.ts';

const routes = (paths: readonly string[]) => `
apiVersion: gateway.networking.k8s.io/v1
kind: HTTPRoute
metadata: { name: shop-api, namespace: shop }
spec:
  parentRefs: [{ name: edge }]
  hostnames: [shop.example.com]
  rules:
${paths.map((path) => `    - matches: [{ path: { type: PathPrefix, value: ${path} } }]\n      backendRefs: [{ name: orders, port: 80 }]`).join('\n')}
`;

interface GatewayView {
  readonly snapshot: { readonly httpRoutes?: { spec: { rules: unknown[] } }[] } | null;
}

t.test(
  'HTTPRoutes in the policy folder reach the snapshot of the gateway they name, follow edits, and a bad edit keeps the last good',
  async (t) => {
    const mesh = await startTestMesh(t, '');
    const file = join(mesh.policiesDir, 'routes.yaml');
    await writeFile(file, routes(['/api']));
    const app = await startEchoApp(t);
    const edge = await mesh.startSidecar({
      workload: 'edge',
      namespace: 'shop',
      appPort: app.port,
    });
    const orders = await mesh.startSidecar({
      workload: 'orders',
      namespace: 'shop',
      appPort: app.port,
    });
    await Promise.all([untilReady(edge.adminPort), untilReady(orders.adminPort)]);
    const rules = async (adminPort: number) =>
      ((await adminConfig(adminPort)) as unknown as GatewayView).snapshot?.httpRoutes?.[0]?.spec
        .rules.length;

    await eventually(async () => (await rules(edge.adminPort)) === 1);
    t.equal(await rules(orders.adminPort), undefined, 'orders is not the gateway the route names');

    await writeFile(file, routes(['/api', '/shop']));
    await eventually(async () => (await rules(edge.adminPort)) === 2);
    t.pass('an edit reaches the gateway');

    await writeFile(file, routes(['/api', 'no-slash']));
    // A reload with an error is refused whole; give the watcher time to have tried.
    await new Promise((resolve) => setTimeout(resolve, 500));
    t.equal(await rules(edge.adminPort), 2, 'the last good routes stay');
  },
);
