import { mkdir, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import t from 'tap';
import { Agent, request } from 'undici';
import { CertificateAuthority } from '../../certs/authority.ts';
import { startControlPlaneProcess, waitUntilHealthy } from '../../cli/processes.ts';
import { statePaths } from '../../control-plane/state.ts';
import { TokenStore } from '../../control-plane/tokens.ts';
import {
  adminConfig,
  clientCredentials,
  eventually,
  freePort,
  mtlsAgent,
  ordersPolicyYaml,
  spawnSidecar,
  startEchoApp,
  TESTER,
  tempDir,
} from '../helpers.ts';

const OTHER = 'spiffe://cluster.local/ns/default/sa/other';

t.test(
  'killing the control plane mid-traffic: the sidecar keeps enforcing, reconnects, and takes the new epoch',
  async (t) => {
    const dir = await tempDir(t);
    const stateDir = join(dir, 'state');
    const policiesDir = join(dir, 'policies');
    await mkdir(policiesDir);
    await writeFile(join(policiesDir, 'orders.yaml'), ordersPolicyYaml([TESTER]));
    const ca = await CertificateAuthority.create('cluster.local');
    await ca.writeTo(statePaths(stateDir).ca);
    const tokenFile = join(dir, 'orders.token');
    await writeFile(
      tokenFile,
      await new TokenStore(statePaths(stateDir).tokens, 'cluster.local').create(
        'orders',
        'shop',
        'orders',
      ),
    );
    const apiPort = await freePort();
    const verifying = new Agent({ connect: { ca: ca.bundlePem } });
    t.teardown(() => verifying.close());

    const startControlPlane = async () => {
      const child = startControlPlaneProcess({
        policiesDir,
        stateDir,
        apiPort,
        logFile: join(dir, 'control-plane.log'),
      });
      t.teardown(() => child.process.kill('SIGKILL'));
      await waitUntilHealthy(
        `https://127.0.0.1:${apiPort}/v1/trust-bundle`,
        child,
        20_000,
        verifying,
      );
      return child;
    };
    const first = await startControlPlane();

    const app = await startEchoApp(t);
    const sidecar = await spawnSidecar(t, {
      POSTERN_CONTROL_PLANE: `https://127.0.0.1:${apiPort}`,
      POSTERN_CA_FILE: join(statePaths(stateDir).ca, 'bundle.pem'),
      POSTERN_BOOTSTRAP_TOKEN_FILE: tokenFile,
      POSTERN_APP_PORT: String(app.port),
      POSTERN_WORKLOAD: 'orders',
      POSTERN_NAMESPACE: 'shop',
      POSTERN_SERVICE_ACCOUNT: 'orders',
      POSTERN_LABELS: 'app=orders',
    });
    const version = async () => (await adminConfig(sidecar.adminPort)).version;
    await eventually(async () => (await version()) !== null);
    const before = (await version())!;
    t.match(before, /^1\.\d+$/, 'first epoch');

    const tester = mtlsAgent(await clientCredentials(ca, TESTER));
    const other = mtlsAgent(await clientCredentials(ca, OTHER));
    t.teardown(() => Promise.all([tester.close(), other.close()]));
    // Steady traffic for the whole test: every answer must be the policy's answer, never an error.
    const statuses = { tester: new Map<number, number>(), other: new Map<number, number>() };
    let running = true;
    const traffic = (async () => {
      while (running) {
        for (const [who, agent] of [
          ['tester', tester],
          ['other', other],
        ] as const) {
          const res = await request(`https://127.0.0.1:${sidecar.inboundPort}/orders`, {
            dispatcher: agent,
          });
          await res.body.dump();
          statuses[who].set(res.statusCode, (statuses[who].get(res.statusCode) ?? 0) + 1);
        }
      }
    })();

    first.process.kill('SIGKILL');
    await first.exited;
    // While the control plane is down, the policy changes on disk: other gets access too.
    await writeFile(join(policiesDir, 'orders.yaml'), ordersPolicyYaml([TESTER, OTHER]));
    const duringOutage = await request(`https://127.0.0.1:${sidecar.inboundPort}/orders`, {
      dispatcher: other,
    });
    await duringOutage.body.dump();
    t.equal(
      duringOutage.statusCode,
      403,
      'the last good snapshot is still enforced while the control plane is down',
    );

    await startControlPlane();
    await eventually(async () => (await version())?.startsWith('2.') ?? false, 20_000);
    t.pass(`reconnected and applied ${await version()} (was ${before})`);
    await eventually(async () => {
      const res = await request(`https://127.0.0.1:${sidecar.inboundPort}/orders`, {
        dispatcher: other,
      });
      await res.body.dump();
      return res.statusCode === 200;
    });
    running = false;
    await traffic;
    t.same([...statuses.tester.keys()], [200], 'the allowed caller was never refused');
    t.same(
      [...statuses.other.keys()].sort(),
      [200, 403],
      'the other caller was denied, then allowed by the new policy',
    );
    t.match(sidecar.log(), /snapshot watch (failed|ended)/, 'the sidecar noticed the outage');
  },
);
