import { mkdir, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import t from 'tap';
import { Agent, request } from 'undici';
import { CertificateAuthority } from '../../certs/authority.ts';
import { startControlPlaneProcess, waitUntilHealthy } from '../../cli/processes.ts';
import { statePaths } from '../../control-plane/state.ts';
import { TokenStore } from '../../control-plane/tokens.ts';
import {
  alertsUntil,
  clientCredentials,
  eventually,
  freePort,
  mtlsAgent,
  spawnSidecar,
  startEchoApp,
  tempDir,
  untilReady,
} from '../helpers.ts';
import { startRedis } from '../redis.ts';

const FRONTEND = 'spiffe://cluster.local/ns/shop/sa/frontend';
const OPERATOR = 'spiffe://cluster.local/ns/postern-system/sa/operator';
const POLICY = `
apiVersion: postern.dev/v1alpha1
kind: RoutePolicy
metadata: { name: orders-api, namespace: shop }
spec:
  selector: { matchLabels: { app: orders } }
  routes:
    - name: export
      match: { path: { prefix: /export } }
      allow: [{ principals: ["${FRONTEND}"] }]
      exfiltration: { maxResponseBytes: { bytes: "1000", per: 1h }, action: block }
`;

t.test(
  'two control-plane processes sharing one Redis each see the whole cluster: reads through pods reporting to different replicas add up to an alert and a block on both, and a clear at one reaches the other',
  async (t) => {
    const redis = await startRedis(t);
    const dir = await tempDir(t);
    const stateDir = join(dir, 'state');
    const policiesDir = join(dir, 'policies');
    await mkdir(policiesDir);
    await writeFile(join(policiesDir, 'orders.yaml'), POLICY);
    const ca = await CertificateAuthority.create('cluster.local');
    await ca.writeTo(statePaths(stateDir).ca);
    const tokens = new TokenStore(statePaths(stateDir).tokens, 'cluster.local');
    const verifying = new Agent({ connect: { ca: ca.bundlePem } });
    t.teardown(() => verifying.close());

    // Both replicas read the same state folder (CA, tokens, mesh id), as replicas share a Secret.
    const replicas: string[] = [];
    for (const name of ['a', 'b']) {
      const apiPort = await freePort();
      const child = startControlPlaneProcess({
        policiesDir,
        stateDir,
        apiPort,
        logFile: join(dir, `control-plane-${name}.log`),
        env: { POSTERN_REDIS_URL: redis.url, POSTERN_DETECTION_LEARNING: '0' },
      });
      t.teardown(() => child.process.kill('SIGKILL'));
      const url = `https://127.0.0.1:${apiPort}`;
      await waitUntilHealthy(`${url}/v1/trust-bundle`, child, 20_000, verifying);
      replicas.push(url);
    }

    // One orders pod reports to each replica.
    const app = await startEchoApp(t);
    const caFile = join(dir, 'ca.pem');
    await writeFile(caFile, ca.bundlePem);
    const pods: { inboundPort: number; adminPort: number }[] = [];
    for (const [i, controlPlane] of replicas.entries()) {
      const tokenFile = join(dir, `orders-${i}.token`);
      await writeFile(tokenFile, await tokens.create('orders', 'shop', 'orders'));
      const pod = await spawnSidecar(t, {
        POSTERN_CONTROL_PLANE: controlPlane,
        POSTERN_CA_FILE: caFile,
        POSTERN_BOOTSTRAP_TOKEN_FILE: tokenFile,
        POSTERN_APP_PORT: String(app.port),
        POSTERN_WORKLOAD: 'orders',
        POSTERN_NAMESPACE: 'shop',
        POSTERN_SERVICE_ACCOUNT: 'orders',
        POSTERN_LABELS: 'app=orders',
        POSTERN_USAGE_WINDOW: '1s',
        POSTERN_POD: `orders-${i}`,
      });
      await untilReady(pod.adminPort);
      pods.push(pod);
    }

    const caller = mtlsAgent(await clientCredentials(ca, FRONTEND));
    const operator = mtlsAgent(await clientCredentials(ca, OPERATOR));
    t.teardown(() => Promise.all([caller.close(), operator.close()]));
    // 800 bytes through each pod: under the 1,000-byte cap at either replica alone, over it together.
    for (const pod of pods) {
      const read = await request(`https://127.0.0.1:${pod.inboundPort}/export?size=800`, {
        dispatcher: caller,
      });
      await read.body.dump();
      t.equal(read.statusCode, 200);
    }

    for (const url of replicas) {
      const alerts = await alertsUntil(
        url,
        operator,
        (listed) => listed.some((alert) => alert.detector === 'cap'),
        20_000,
      );
      t.match(
        alerts.find((alert) => alert.detector === 'cap'),
        {
          principal: FRONTEND,
          workload: 'shop/orders',
          route: 'export',
          evidence: { responseBytes: 1600, capBytes: 1000 },
        },
        `replica ${url} saw both pods' reports`,
      );
    }

    // The alert blocked the caller on every replica, so at both pods.
    const status = async (pod: { inboundPort: number }) => {
      const response = await request(`https://127.0.0.1:${pod.inboundPort}/export?size=1`, {
        dispatcher: caller,
      });
      await response.body.dump();
      return response.statusCode;
    };
    for (const pod of pods) await eventually(async () => (await status(pod)) === 403, 15_000);
    // An operator clears it at one replica; the other applies the clear from the shared log.
    const query = new URLSearchParams({
      principal: FRONTEND,
      workload: 'shop/orders',
      route: 'export',
    });
    const cleared = await request(`${replicas[0]}/v1/blocks?${query}`, {
      method: 'DELETE',
      dispatcher: operator,
    });
    await cleared.body.dump();
    t.equal(cleared.statusCode, 204);
    for (const pod of pods) await eventually(async () => (await status(pod)) === 200, 15_000);
    const atB = await request(`${replicas[1]}/v1/blocks`, { dispatcher: operator });
    t.same((await atB.body.json()) as object, { blocks: [] }, 'the other replica cleared it too');
  },
);
