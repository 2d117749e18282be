import t from 'tap';
import { request } from 'undici';
import { startControlPlane } from '../../control-plane/control-plane.ts';
import { adminConfig, eventually, startEchoApp, startTestMesh, testLogger } from '../helpers.ts';

t.test(
  'an SVID that expired during a control-plane outage is replaced with the bootstrap token',
  async (t) => {
    // 2-second SVIDs and an outage longer than that: renewal by SVID becomes impossible.
    const mesh = await startTestMesh(t, '', {
      meshDefault: 'allow-authenticated',
      svidTtlMs: 2000,
    });
    const app = await startEchoApp(t);
    const sidecar = await mesh.startSidecar({
      workload: 'orders',
      namespace: 'shop',
      appPort: app.port,
    });
    const readiness = async () => {
      const res = await request(`http://127.0.0.1:${sidecar.adminPort}/healthz/ready`);
      return { status: res.statusCode, ...((await res.body.json()) as { missing: string[] }) };
    };
    const notAfter = async () => (await adminConfig(sidecar.adminPort)).certificate?.notAfter;
    await eventually(async () => (await readiness()).status === 200);

    await mesh.controlPlane.close();
    await eventually(
      async () =>
        (await readiness()).missing.includes(
          'the workload certificate has expired and could not be renewed',
        ),
      10_000,
    );
    t.equal((await readiness()).status, 503, 'not ready while its certificate is expired');
    const expiredNotAfter = await notAfter();

    const restarted = await startControlPlane({
      policiesDir: mesh.policiesDir,
      stateDir: mesh.stateDir,
      apiPort: mesh.controlPlane.apiPort,
      host: '127.0.0.1',
      trustDomain: 'cluster.local',
      meshDefault: 'allow-authenticated',
      svidTtlMs: 3600_000,
      logger: testLogger('control-plane'),
    });
    t.teardown(() => restarted.close());
    await eventually(async () => (await readiness()).status === 200, 20_000);
    t.not(await notAfter(), expiredNotAfter, 'a new certificate was issued');
  },
);
