import { mkdir, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import t from 'tap';
import { request } from 'undici';
import { CertificateAuthority } from '../../certs/authority.ts';
import { startControlPlane } from '../../control-plane/control-plane.ts';
import { statePaths } from '../../control-plane/state.ts';
import { TokenStore } from '../../control-plane/tokens.ts';
import { startSidecar } from '../../sidecar/sidecar.ts';
import {
  clientCredentials,
  eventually,
  freePort,
  mtlsAgent,
  startEchoApp,
  tempDir,
  testLogger,
} from '../helpers.ts';

async function readiness(adminPort: number): Promise<{ status: number; missing: string[] }> {
  const res = await request(`http://127.0.0.1:${adminPort}/healthz/ready`);
  return {
    status: res.statusCode,
    missing: ((await res.body.json()) as { missing: string[] }).missing,
  };
}

t.test(
  'a sidecar is not ready, and serves nothing, before it has a certificate and a snapshot',
  async (t) => {
    const dir = await tempDir(t);
    const stateDir = join(dir, 'state');
    await mkdir(join(dir, 'policies'));
    const ca = await CertificateAuthority.create('cluster.local');
    await ca.writeTo(statePaths(stateDir).ca);
    const caFile = join(dir, 'ca.pem');
    await writeFile(caFile, ca.bundlePem);
    const tokens = new TokenStore(statePaths(stateDir).tokens, 'cluster.local');
    const tokenFile = join(dir, 'orders.token');
    // The token binds orders with labels app=orders, the sidecar asks for
    // another set: the certificate is granted, the registration is not.
    await writeFile(tokenFile, await tokens.create('orders', 'shop', 'orders'));
    const app = await startEchoApp(t);
    const apiPort = await freePort();
    const adminPort = await freePort();

    // No control plane is listening yet.
    const starting = startSidecar({
      controlPlane: `https://127.0.0.1:${apiPort}`,
      caFile,
      bootstrapTokenFile: tokenFile,
      appPort: app.port,
      appHost: '127.0.0.1',
      workload: 'orders',
      namespace: 'shop',
      serviceAccount: 'orders',
      trustDomain: 'cluster.local',
      labels: { app: 'orders', tier: 'backend' },
      inboundHost: '127.0.0.1',
      inboundPort: 0,
      outboundPort: 0,
      adminPort,
      logger: testLogger('sidecar'),
    });
    await eventually(
      async () =>
        await request(`http://127.0.0.1:${adminPort}/healthz/ready`).then(
          (r) => r.body.dump().then(() => true),
          () => false,
        ),
    );
    const before = await readiness(adminPort);
    t.equal(before.status, 503);
    t.ok(before.missing.includes('no workload certificate yet'));
    t.ok(before.missing.includes('no policy snapshot yet'));

    const controlPlane = await startControlPlane({
      policiesDir: join(dir, 'policies'),
      stateDir,
      apiPort,
      host: '127.0.0.1',
      trustDomain: 'cluster.local',
      meshDefault: 'allow-authenticated',
      svidTtlMs: 3600_000,
      logger: testLogger('control-plane'),
    });
    t.teardown(() => controlPlane.close());
    const sidecar = await starting;
    t.teardown(() => sidecar.close());

    const withCertificate = await readiness(adminPort);
    t.equal(withCertificate.status, 503, 'a certificate alone is not enough');
    t.equal(withCertificate.missing[0], 'no policy snapshot yet');
    await eventually(async () => (await readiness(adminPort)).missing.length === 2);
    t.match(
      (await readiness(adminPort)).missing[1],
      /the control plane refused the snapshot watch: .*labels come from the credential/,
      'and why, when the control plane refused the watch',
    );
    const client = mtlsAgent(
      await clientCredentials(ca, 'spiffe://cluster.local/ns/shop/sa/frontend'),
    );
    t.teardown(() => client.close());
    const res = await request(`https://127.0.0.1:${sidecar.inboundPort}/orders`, {
      dispatcher: client,
    });
    t.equal(res.statusCode, 503, 'requests are refused (fail closed) without a snapshot');
    t.equal(
      ((await res.body.json()) as { error: { code: string } }).error.code,
      'POSTERN_NOT_READY',
    );
    t.equal(app.requests.length, 0);

    // Bind the workload with those labels: the sidecar's retrying watch now registers and becomes ready.
    await tokens.create('orders', 'shop', 'orders', undefined, { app: 'orders', tier: 'backend' });
    await eventually(async () => (await readiness(adminPort)).status === 200);
    const allowed = await request(`https://127.0.0.1:${sidecar.inboundPort}/orders`, {
      dispatcher: client,
    });
    t.equal(allowed.statusCode, 200, 'mesh default allow-authenticated lets a mesh identity in');
    await allowed.body.dump();
  },
);
