import { execFile } from 'node:child_process';
import { mkdir, readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { promisify } from 'node:util';
import t from 'tap';
import { type Agent, request } from 'undici';
import { CHILD_NODE_ARGS, POSTERN_BIN } from '../../cli/processes.ts';
import {
  adminMetrics,
  clientCredentials,
  eventually,
  mtlsAgent,
  startEchoApp,
  startTestMesh,
  untilReady,
} from '../helpers.ts';

const FRONTEND = 'spiffe://cluster.local/ns/shop/sa/frontend';
const OPERATOR = 'spiffe://cluster.local/ns/postern-system/sa/operator';
const policy = (bytes: number, per: string) => `
apiVersion: postern.dev/v1alpha1
kind: RoutePolicy
metadata: { name: orders-api, namespace: shop }
spec:
  selector: { matchLabels: { app: orders } }
  routes:
    - name: export
      match: { path: { prefix: /export } }
      allow: [{ principals: ["${FRONTEND}"] }]
      exfiltration: { maxResponseBytes: { bytes: "${bytes}", per: ${per} }, action: block }
`;

/** Runs `postern <args>`; resolves with its stdout. */
async function postern(args: string[]): Promise<string> {
  const { stdout } = await promisify(execFile)(process.execPath, [
    ...CHILD_NODE_ARGS,
    POSTERN_BIN,
    ...args,
  ]);
  return stdout;
}

async function get(agent: Agent, port: number, path: string) {
  const response = await request(`https://127.0.0.1:${port}${path}`, { dispatcher: agent });
  let received = 0;
  let complete = true;
  try {
    for await (const chunk of response.body) received += (chunk as Buffer).length;
  } catch {
    complete = false;
  }
  return { status: response.statusCode, headers: response.headers, received, complete };
}

t.test(
  "a capped route's caller gets what is left of its cap: a longer response is refused or cut there",
  async (t) => {
    // A day's cap: its period turns at midnight UTC, not within this test.
    const mesh = await startTestMesh(t, policy(100_000, '24h'));
    const app = await startEchoApp(t);
    const orders = await mesh.startSidecar({
      workload: 'orders',
      namespace: 'shop',
      appPort: app.port,
    });
    await untilReady(orders.adminPort);
    const frontend = mtlsAgent(await clientCredentials(mesh.controlPlane.ca, FRONTEND));
    t.teardown(() => frontend.close());

    const first = await get(frontend, orders.inboundPort, '/export?size=60000');
    t.match(first, { status: 200, received: 60_000, complete: true }, 'within the cap');

    const whole = await get(frontend, orders.inboundPort, '/export?size=60000');
    t.equal(whole.status, 403, 'a response that says it is longer than what is left is refused');

    const streamed = await get(frontend, orders.inboundPort, '/export?size=60000&chunked=1');
    t.equal(streamed.status, 200, 'a streamed response starts');
    t.equal(streamed.received, 40_000, 'and is cut at the cap: 100,000 less the 60,000 read');
    t.equal(streamed.complete, false, 'the client sees the cut, not a short body');

    const after = await get(frontend, orders.inboundPort, '/export?size=10');
    t.equal(after.status, 403, 'nothing left: refused until the period ends');
    const midnight = Math.ceil(Date.now() / 86_400_000) * 86_400_000;
    t.ok(
      Math.abs(Number(after.headers['retry-after']) - (midnight - Date.now()) / 1000) < 5,
      'which is when the day turns',
    );

    const metrics = await adminMetrics(orders.adminPort);
    t.match(metrics, /postern_exfiltration_guard_total\{route="export",verdict="cut"\} 1/);
    t.match(metrics, /postern_exfiltration_guard_total\{route="export",verdict="capped"\} 2/);
  },
);

t.test(
  'a caller reading a capped route through two replicas is blocked everywhere by the control plane, until an operator clears it',
  async (t) => {
    const mesh = await startTestMesh(t, policy(1000, '1h'), {
      controlPlane: { detectionLearningMs: 0 },
    });
    const app = await startEchoApp(t);
    const replicas: { inboundPort: number; adminPort: number }[] = [];
    for (let i = 0; i < 2; i++) {
      replicas.push(
        await mesh.startSidecar({
          workload: 'orders',
          namespace: 'shop',
          appPort: app.port,
          usageWindowSeconds: 1,
        }),
      );
    }
    await Promise.all(replicas.map((r) => untilReady(r.adminPort)));
    const frontend = mtlsAgent(await clientCredentials(mesh.controlPlane.ca, FRONTEND));
    const operator = mtlsAgent(await clientCredentials(mesh.controlPlane.ca, OPERATOR));
    t.teardown(() => Promise.all([frontend.close(), operator.close()]));

    // 800 bytes from each: within each replica's count of the 1,000-byte cap, over it together.
    for (const replica of replicas) {
      t.equal((await get(frontend, replica.inboundPort, '/export?size=800')).status, 200);
    }
    for (const replica of replicas) {
      await eventually(
        async () => (await get(frontend, replica.inboundPort, '/export?size=1')).status === 403,
        15_000,
      );
    }
    const refused = await request(`https://127.0.0.1:${replicas[1]!.inboundPort}/export?size=1`, {
      dispatcher: frontend,
    });
    t.equal(refused.statusCode, 403, 'both replicas refuse the caller');
    t.match(await refused.body.json(), {
      error: { code: 'POSTERN_EXFILTRATION_BLOCKED', principal: FRONTEND, route: 'export' },
    });

    const listed = await request(`${mesh.controlPlaneUrl}/v1/blocks`, { dispatcher: operator });
    const { blocks } = (await listed.body.json()) as { blocks: Record<string, string>[] };
    t.match(blocks, [
      { principal: FRONTEND, workload: 'shop/orders', route: 'export', detector: 'cap' },
    ]);
    const file = join(mesh.stateDir, 'blocks.json');
    await eventually(async () => (await readFile(file, 'utf8').catch(() => '')).includes(FRONTEND));
    t.match(
      JSON.parse(await readFile(file, 'utf8')),
      blocks,
      'kept in the state folder: a restart unblocks nobody',
    );

    const query = new URLSearchParams({
      principal: FRONTEND,
      workload: 'shop/orders',
      route: 'export',
    });
    const byFrontend = await request(`${mesh.controlPlaneUrl}/v1/blocks?${query}`, {
      method: 'DELETE',
      dispatcher: frontend,
    });
    await byFrontend.body.dump();
    t.equal(byFrontend.statusCode, 403, 'the blocked caller cannot clear itself');
    // The operator clears it with the CLI (which calls DELETE /v1/blocks).
    const credentials = join(mesh.dir, 'operator');
    await mkdir(credentials);
    const pems = await clientCredentials(mesh.controlPlane.ca, OPERATOR);
    await Promise.all([
      writeFile(join(credentials, 'cert.pem'), pems.cert),
      writeFile(join(credentials, 'key.pem'), pems.key),
      writeFile(join(credentials, 'bundle.pem'), pems.ca),
    ]);
    const operatorFlags = ['--control-plane', mesh.controlPlaneUrl, '--credentials', credentials];
    const listedByCli = await postern(['blocks', 'list', ...operatorFlags]);
    t.match(JSON.parse(listedByCli), { principal: FRONTEND, route: 'export' });
    const cleared = await postern([
      'blocks',
      'clear',
      ...operatorFlags,
      '--principal',
      FRONTEND,
      '--workload',
      'shop/orders',
      '--route',
      'export',
    ]);
    t.match(cleared, /is no longer blocked on shop\/orders route export/);
    await eventually(
      async () => (await get(frontend, replicas[0]!.inboundPort, '/export?size=1')).status === 200,
      15_000,
    );
    const again = await request(`${mesh.controlPlaneUrl}/v1/blocks?${query}`, {
      method: 'DELETE',
      dispatcher: operator,
    });
    t.equal(again.statusCode, 404, 'a block cleared is gone');
    await again.body.dump();
  },
);
