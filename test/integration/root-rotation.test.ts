import { execFile } from 'node:child_process';
import { copyFile, mkdir, readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import t from 'tap';
import { Agent, ProxyAgent, request } from 'undici';
import { CertificateAuthority } from '../../certs/authority.ts';
import {
  CHILD_NODE_ARGS,
  POSTERN_BIN,
  startControlPlaneProcess,
  waitUntilHealthy,
} from '../../cli/processes.ts';
import type { RotationStatus } from '../../common/wire.ts';
import { statePaths } from '../../control-plane/state.ts';
import { TokenStore } from '../../control-plane/tokens.ts';
import {
  type AdminConfig,
  adminConfig,
  clientCredentials,
  eventually,
  freePort,
  mtlsAgent,
  ordersPolicyYaml,
  type PemCredentials,
  spawnSidecar,
  startEchoApp,
  TESTER,
  tempDir,
  untilReady,
} from '../helpers.ts';

const FRONTEND = 'spiffe://cluster.local/ns/shop/sa/frontend';
const OPERATOR = 'spiffe://cluster.local/ns/postern-system/sa/operator';
// Short SVIDs, so that sidecars renew (from whichever root signs) every four
// seconds, and the old root retires eight seconds after the switch: the
// window the overlap checks run in, which 4 s did not always leave under
// the whole suite's load.
const SVID_TTL = '8s';

/** Runs the `postern` binary without blocking this process (the traffic goes on meanwhile). */
function posternAsync(
  ...args: string[]
): Promise<{ code: number; stdout: string; stderr: string }> {
  return new Promise((resolve) => {
    execFile(
      process.execPath,
      [...CHILD_NODE_ARGS, POSTERN_BIN, ...args],
      { encoding: 'utf8' },
      (error, stdout, stderr) =>
        resolve({ code: error ? Number(error.code ?? 1) : 0, stdout, stderr }),
    );
  });
}

/** What the sidecar's admin /config says about its certificate and the roots it trusts. */
type TrustConfig = AdminConfig & {
  readonly certificate?: { readonly issuer: string };
  readonly trustBundle?: { readonly roots: readonly { readonly subject: string }[] };
};
const trustOf = async (adminPort: number) => (await adminConfig(adminPort)) as TrustConfig;
const trustedSubjects = async (adminPort: number) =>
  ((await trustOf(adminPort)).trustBundle?.roots ?? []).map((root) => root.subject);

/**
 * Whether orders' inbound listener serves a client presenting `credentials`,
 * the client verifying orders with `trusting` (a TLS refusal is a thrown
 * error).
 */
async function accepted(port: number, credentials: PemCredentials, trusting: string) {
  const agent = mtlsAgent({ ...credentials, ca: trusting });
  try {
    const response = await request(`https://127.0.0.1:${port}/orders`, { dispatcher: agent });
    await response.body.dump();
    return response.statusCode === 200;
  } catch {
    return false;
  } finally {
    await agent.close();
  }
}

t.test(
  'a root rotation with traffic flowing and zero failed requests: the new root is trusted before it signs, sidecars renew from it, and once the old root retires its certificates are refused',
  async (t) => {
    const dir = await tempDir(t);
    const stateDir = join(dir, 'state');
    const caDir = statePaths(stateDir).ca;
    const policiesDir = join(dir, 'policies');
    await mkdir(policiesDir);
    await writeFile(join(policiesDir, 'orders.yaml'), ordersPolicyYaml([TESTER, FRONTEND]));
    const oldRoot = await CertificateAuthority.create('cluster.local');
    await oldRoot.writeTo(caDir);
    const tokens = new TokenStore(statePaths(stateDir).tokens, 'cluster.local');

    const apiPort = await freePort();
    const controlPlaneUrl = `https://127.0.0.1:${apiPort}`;
    const controlPlane = startControlPlaneProcess({
      policiesDir,
      stateDir,
      apiPort,
      logFile: join(dir, 'control-plane.log'),
      env: { POSTERN_SVID_TTL: SVID_TTL },
    });
    t.teardown(() => controlPlane.process.kill('SIGKILL'));
    const verifying = new Agent({ connect: { ca: oldRoot.bundlePem } });
    t.teardown(() => verifying.close());
    await waitUntilHealthy(`${controlPlaneUrl}/v1/trust-bundle`, controlPlane, 20_000, verifying);

    const app = await startEchoApp(t);
    const sidecarFor = async (workload: string) => {
      const tokenFile = join(dir, `${workload}.token`);
      await writeFile(tokenFile, await tokens.create(workload, 'shop', workload));
      return spawnSidecar(t, {
        POSTERN_CONTROL_PLANE: controlPlaneUrl,
        POSTERN_CA_FILE: join(caDir, 'bundle.pem'),
        POSTERN_BOOTSTRAP_TOKEN_FILE: tokenFile,
        POSTERN_APP_PORT: String(app.port),
        POSTERN_WORKLOAD: workload,
        POSTERN_NAMESPACE: 'shop',
        POSTERN_SERVICE_ACCOUNT: workload,
        POSTERN_LABELS: `app=${workload}`,
      });
    };
    const orders = await sidecarFor('orders');
    const frontend = await sidecarFor('frontend');
    await Promise.all([untilReady(orders.adminPort), untilReady(frontend.adminPort)]);
    await eventually(
      async () => ((await adminConfig(frontend.adminPort)).snapshot?.registry.length ?? 0) > 0,
    );

    // Traffic from frontend's app to orders, through both sidecars, for the whole rotation.
    const proxy = new ProxyAgent(`http://127.0.0.1:${frontend.outboundPort}`);
    t.teardown(() => proxy.close());
    let phase = 'steady';
    const served = new Map<string, number>();
    const failures: string[] = [];
    let running = true;
    const caller = async () => {
      while (running) {
        const during = phase;
        try {
          const response = await request('http://orders/orders', { dispatcher: proxy });
          const body = await response.body.text();
          if (response.statusCode === 200) served.set(during, (served.get(during) ?? 0) + 1);
          else failures.push(`${during}: ${response.statusCode} ${body}`);
        } catch (error) {
          failures.push(`${during}: ${(error as Error).message}`);
        }
      }
    };
    const traffic = Promise.all([caller(), caller()]);

    const operatorDir = join(dir, 'operator');
    const issueOperator = async (out = operatorDir) => {
      const issued = await posternAsync(
        ...['certs', 'issue', '--ca', caDir, '--spiffe-id', OPERATOR, '--out', out],
      );
      t.equal(issued.code, 0, issued.stderr);
    };
    const rotate = (...args: string[]) =>
      posternAsync(
        ...['certs', 'rotate', ...args],
        ...['--control-plane', controlPlaneUrl, '--credentials', operatorDir],
      );
    const status = async () => {
      const result = await rotate('status');
      if (result.code !== 0) throw new Error(result.stderr);
      return JSON.parse(result.stdout) as RotationStatus;
    };
    // Polled in process: a CLI process every 20 ms was itself the load that
    // kept the rotation from finishing in time when the whole suite ran.
    const asOperator = async (method: 'GET' | 'POST', path: string, body?: unknown) => {
      const [cert, key, ca] = await Promise.all(
        ['cert.pem', 'key.pem', 'bundle.pem'].map((f) => readFile(join(operatorDir, f), 'utf8')),
      );
      const agent = new Agent({ connect: { cert, key, ca } });
      try {
        const response = await request(`${controlPlaneUrl}${path}`, {
          method,
          dispatcher: agent,
          ...(body === undefined
            ? {}
            : { headers: { 'content-type': 'application/json' }, body: JSON.stringify(body) }),
        });
        return { status: response.statusCode, body: await response.body.text() };
      } finally {
        await agent.close();
      }
    };
    const phaseNow = async () =>
      (JSON.parse((await asOperator('GET', '/v1/trust-bundle/rotation')).body) as RotationStatus)
        .phase;
    await issueOperator();
    // Issued while steady: by the time the prepared phase is observed the
    // auto-activation may already have made the new root sign.
    const oldRootOperatorDir = join(dir, 'operator-of-the-old-root');
    await issueOperator(oldRootOperatorDir);
    const oldSubject = oldRoot.certificate.subject;
    const oldClient = await clientCredentials(oldRoot, TESTER);

    // Prepared: the new root joins the bundle; the old root still signs.
    // 4 s of propagation: the prepared phase must outlast the checks below
    // when the whole suite loads the machine (2 s did not).
    const started = await rotate('--propagation', '4s');
    t.equal(started.code, 0, started.stderr);
    t.match(started.stdout, /rotation started: CN=Postern root CA \w+, O=cluster\.local joins/);
    phase = 'prepared';
    // In process, at once: a CLI process could start after the switch.
    const refused = await asOperator('POST', '/v1/trust-bundle/rotation', {});
    t.equal(refused.status, 409, 'a second rotation is refused while one is under way');
    t.match(refused.body, /already under way/);
    for (const sidecar of [orders, frontend]) {
      await eventually(async () => (await trustedSubjects(sidecar.adminPort)).length === 2);
    }
    t.pass('both sidecars trust both roots, without a restart');
    t.equal(
      (await trustOf(orders.adminPort)).certificate?.issuer,
      oldSubject,
      'orders still holds a certificate of the old root',
    );
    // The operator takes the new bundle, as every holder of a copy should
    // before the switch (the control plane's certificate will change root).
    await issueOperator();
    await copyFile(join(operatorDir, 'bundle.pem'), join(oldRootOperatorDir, 'bundle.pem'));

    // Active: once both sidecars acked the bundle, the new root signs.
    await eventually(async () => (await phaseNow()) === 'active', 20_000);
    phase = 'active';
    const newRoot = await CertificateAuthority.load(caDir);
    const newSubject = newRoot.certificate.subject;
    t.not(newSubject, oldSubject, 'another root signs');
    for (const sidecar of [orders, frontend]) {
      await eventually(
        async () => (await trustOf(sidecar.adminPort)).certificate?.issuer === newSubject,
      );
    }
    t.pass('both sidecars renewed with certificates of the new root');
    const newClient = await clientCredentials(newRoot, TESTER);
    t.ok(
      await accepted(orders.inboundPort, oldClient, newRoot.bundlePem),
      'overlap: an old-root certificate is accepted',
    );
    t.ok(
      await accepted(orders.inboundPort, newClient, newRoot.bundlePem),
      'overlap: a new-root certificate is accepted',
    );
    // The old-root operator certificate would be refused after retirement.
    await issueOperator();

    // Steady again: the old root left the bundle once its last certificate expired.
    await eventually(async () => (await phaseNow()) === 'steady', 20_000);
    t.equal((await status()).phase, 'steady', 'postern certs rotate status says so');
    phase = 'retired';
    for (const sidecar of [orders, frontend]) {
      await eventually(async () => {
        const subjects = await trustedSubjects(sidecar.adminPort);
        return subjects.length === 1 && subjects[0] === newSubject;
      });
    }
    t.pass('both sidecars dropped the old root');
    t.notOk(
      await accepted(orders.inboundPort, oldClient, newRoot.certPem),
      'a certificate of the retired root is refused',
    );
    t.ok(
      await accepted(orders.inboundPort, newClient, newRoot.certPem),
      'one of the new root is served',
    );
    const oldOperator = await posternAsync(
      ...['certs', 'rotate', 'status', '--control-plane', controlPlaneUrl],
      ...['--credentials', oldRootOperatorDir],
    );
    t.not(oldOperator.code, 0);
    t.match(
      oldOperator.stderr,
      /answered 401: .*needs an operator client certificate/,
      'the control plane refuses an operator certificate of the retired root too',
    );
    // Traffic goes on a moment after the retirement before it stops.
    const servedAtRetirement = served.get('retired') ?? 0;
    await eventually(() => (served.get('retired') ?? 0) > servedAtRetirement + 10);

    running = false;
    await traffic;
    t.same(failures, [], 'not one request failed');
    for (const during of ['steady', 'prepared', 'active', 'retired']) {
      t.ok((served.get(during) ?? 0) > 0, `requests were served while ${during}`);
    }
  },
);
