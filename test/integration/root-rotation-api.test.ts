import { mkdir } from 'node:fs/promises';
import { join } from 'node:path';
import type { TLSSocket } from 'node:tls';
import t from 'tap';
import { Agent, buildConnector, request } from 'undici';
import type { RotationStatus } from '../../common/wire.ts';
import { startControlPlane } from '../../control-plane/control-plane.ts';
import {
  clientCredentials,
  eventually,
  mtlsAgent,
  type PemCredentials,
  startTestMesh,
  TESTER,
  tempDir,
  testLogger,
} from '../helpers.ts';

const OPERATOR = 'spiffe://cluster.local/ns/postern-system/sa/operator';
const HOUR = 3_600_000;

type Answer = RotationStatus & { error?: { code: string; message: string } };

/** One call to the rotation API as `credentials` (none: no client certificate). */
async function call(
  baseUrl: string,
  method: 'GET' | 'POST',
  path: string,
  trusting: string,
  credentials?: PemCredentials,
  body?: unknown,
): Promise<{ status: number; body: Answer }> {
  const agent = mtlsAgent({ ...credentials, ca: trusting });
  try {
    const res = await request(`${baseUrl}/v1/trust-bundle/rotation${path}`, {
      method,
      dispatcher: agent,
      ...(body === undefined
        ? {}
        : { headers: { 'content-type': 'application/json' }, body: JSON.stringify(body) }),
    });
    return { status: res.statusCode, body: (await res.body.json()) as Answer };
  } finally {
    await agent.close();
  }
}

/** The subject of the certificate the control plane serves to a client trusting `trusting`. */
async function servingIssuer(baseUrl: string, trusting: string): Promise<string> {
  let issuer = '';
  const connect = buildConnector({ ca: trusting, checkServerIdentity: () => undefined });
  const agent = new Agent({
    connect: (options, callback) =>
      connect(options, (error, socket) => {
        if (socket) issuer = (socket as TLSSocket).getPeerX509Certificate()?.issuer ?? '';
        callback(error as null, socket as never);
      }),
  });
  try {
    await (await request(`${baseUrl}/v1/trust-bundle`, { dispatcher: agent })).body.dump();
    return issuer.replaceAll('\n', ', ');
  } finally {
    await agent.close();
  }
}

t.test(
  'only operators start, switch or read a root rotation; a second start or switch is refused',
  async (t) => {
    const mesh = await startTestMesh(t, '', { svidTtlMs: 2 * HOUR });
    const oldRoot = mesh.controlPlane.ca;
    const operator = await clientCredentials(oldRoot, OPERATOR);
    const tester = await clientCredentials(oldRoot, TESTER);
    const api = (method: 'GET' | 'POST', path: string, as?: PemCredentials, body?: unknown) =>
      call(mesh.controlPlaneUrl, method, path, mesh.controlPlane.ca.bundlePem, as, body);

    t.match(await api('GET', ''), {
      status: 401,
      body: { error: { code: 'POSTERN_UNAUTHENTICATED' } },
    });
    t.match(await api('POST', '', tester, {}), {
      status: 403,
      body: { error: { code: 'POSTERN_FORBIDDEN', message: /is not an operator/ } },
    });
    t.match(await api('GET', '', operator), { status: 200, body: { phase: 'steady' } });
    t.match(await api('POST', '', operator, { propagation: 'soon' }), {
      status: 400,
      body: { error: { message: /propagation: expected a duration/ } },
    });

    const started = await api('POST', '', operator, { propagation: '1h' });
    t.equal(started.status, 200);
    t.equal(started.body.phase, 'prepared');
    t.same(
      started.body.roots.map((root) => root.role),
      ['signing', 'next'],
    );
    t.same(started.body.waitingFor, [], 'no sidecar to wait for');
    const verifying = new Agent({ connect: { ca: oldRoot.bundlePem } });
    t.teardown(() => verifying.close());
    const bundle = await (
      await request(`${mesh.controlPlaneUrl}/v1/trust-bundle`, { dispatcher: verifying })
    ).body.text();
    t.equal(bundle.match(/BEGIN CERTIFICATE/g)?.length, 2, 'GET /v1/trust-bundle lists both roots');
    t.match(await api('POST', '', operator, {}), {
      status: 409,
      body: { error: { code: 'POSTERN_ROTATION_IN_PROGRESS' } },
    });
    t.equal(
      await servingIssuer(mesh.controlPlaneUrl, bundle),
      oldRoot.certificate.subject,
      'prepared: the control plane still serves a certificate of the old root',
    );

    const switched = await api('POST', '/activate', operator, {});
    t.equal(switched.status, 200);
    t.equal(switched.body.phase, 'active', 'switched before the propagation time, on request');
    t.equal(
      Date.parse(switched.body.retireAt!) - Date.parse(switched.body.activatedAt!),
      2 * HOUR,
      'the old root stays for one SVID lifetime',
    );
    t.match(await api('POST', '/activate', operator, {}), {
      status: 409,
      body: { error: { code: 'POSTERN_NO_PREPARED_ROOT' } },
    });
    const newRoot = mesh.controlPlane.ca;
    t.not(newRoot.certPem, oldRoot.certPem);
    // The serving certificate is renewed in the background after the switch.
    await eventually(
      async () =>
        (await servingIssuer(mesh.controlPlaneUrl, newRoot.bundlePem)) ===
        newRoot.certificate.subject,
    );
    t.pass('active: the control plane serves a certificate of the new root');
  },
);

t.test(
  'a control plane restarted in the middle of a rotation resumes it with the same roots',
  async (t) => {
    const dir = await tempDir(t);
    const stateDir = join(dir, 'state');
    const policiesDir = join(dir, 'policies');
    await mkdir(policiesDir);
    const start = () =>
      startControlPlane({
        policiesDir,
        stateDir,
        apiPort: 0,
        host: '127.0.0.1',
        trustDomain: 'cluster.local',
        meshDefault: 'deny',
        svidTtlMs: HOUR,
        logger: testLogger('control-plane'),
      });
    const first = await start();
    const operator = await clientCredentials(first.ca, OPERATOR);
    const started = await call(
      `https://127.0.0.1:${first.apiPort}`,
      'POST',
      '',
      first.ca.bundlePem,
      operator,
      { propagation: '1h' },
    );
    t.equal(started.body.phase, 'prepared');
    const bundle = first.ca.bundlePem;
    await first.close();

    const restartedAt = Date.now();
    const second = await start();
    t.teardown(() => second.close());
    const resumed = await call(`https://127.0.0.1:${second.apiPort}`, 'GET', '', bundle, operator);
    t.equal(resumed.body.phase, 'prepared');
    t.same(resumed.body.roots, started.body.roots, 'the same roots, the same roles');
    t.equal(resumed.body.trustBundle, started.body.trustBundle);
    t.ok(
      Date.parse(resumed.body.activatesNoSoonerThan!) >= restartedAt + HOUR - 1000,
      'the propagation time counts again from the restart',
    );
    t.equal(second.ca.certPem, first.ca.certPem, 'the old root still signs');
  },
);
