import { mkdir, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import t from 'tap';
import { Agent, request } from 'undici';
import { CertificateAuthority } from '../../certs/authority.ts';
import { startControlPlaneProcess, waitUntilHealthy } from '../../cli/processes.ts';
import { statePaths } from '../../control-plane/state.ts';
import {
  eventually,
  freePort,
  mtlsAgent,
  ordersPolicyYaml,
  tempDir,
  workloadCredentials,
} from '../helpers.ts';
import { startOtlpReceiver } from '../otlp-receiver.ts';

const FRONTEND = 'spiffe://cluster.local/ns/shop/sa/frontend';
const TRACE = '4bf92f3577b34da6a3ce929d0e0e4736';

t.test(
  'the control plane exports each alert as an OTel log record, a span event and a count',
  async (t) => {
    const receiver = await startOtlpReceiver(t);
    const dir = await tempDir(t);
    const stateDir = join(dir, 'state');
    const policiesDir = join(dir, 'policies');
    await mkdir(policiesDir);
    await writeFile(join(policiesDir, 'orders.yaml'), ordersPolicyYaml([FRONTEND]));
    const ca = await CertificateAuthority.create('cluster.local');
    await ca.writeTo(statePaths(stateDir).ca);
    const apiPort = await freePort();
    const child = startControlPlaneProcess({
      policiesDir,
      stateDir,
      apiPort,
      logFile: join(dir, 'control-plane.log'),
      env: {
        POSTERN_DETECTION_LEARNING: '0',
        OTEL_EXPORTER_OTLP_ENDPOINT: receiver.url,
        OTEL_EXPORTER_OTLP_PROTOCOL: 'http/json',
        OTEL_BSP_SCHEDULE_DELAY: '100',
        OTEL_BLRP_SCHEDULE_DELAY: '100',
        OTEL_METRIC_EXPORT_INTERVAL: '300',
      },
    });
    t.teardown(() => child.process.kill('SIGKILL'));
    const url = `https://127.0.0.1:${apiPort}`;
    const verifying = new Agent({ connect: { ca: ca.bundlePem } });
    t.teardown(() => verifying.close());
    await waitUntilHealthy(`${url}/v1/trust-bundle`, child, 20_000, verifying);

    // orders' sidecar reports frontend's first call: news, with no learning period.
    const orders = mtlsAgent(await workloadCredentials(ca, 'orders', 'shop'));
    t.teardown(() => orders.close());
    const window = (start: string) => ({
      source: { workload: 'orders', namespace: 'shop', pod: 'orders-1' },
      window: { start, seconds: 60 },
      entries: [
        {
          direction: 'inbound',
          principal: FRONTEND,
          route: 'list-orders',
          requests: 3,
          requestBytes: 0,
          responseBytes: 4000,
          traceIds: [TRACE],
        },
      ],
    });
    for (const start of ['2026-11-26T10:00:00Z', '2026-11-26T10:02:00Z']) {
      const sent = await request(`${url}/v1/usage`, {
        method: 'POST',
        dispatcher: orders,
        headers: { 'content-type': 'application/json' },
        body: JSON.stringify(window(start)),
      });
      await sent.body.dump();
      t.equal(sent.statusCode, 204);
    }

    await eventually(
      () =>
        receiver.logs().length > 0 &&
        receiver.spans().length > 0 &&
        receiver.points('postern.alerts').length > 0,
      15_000,
    );
    const [log] = receiver.logs();
    t.equal(log!.service, 'postern-control-plane');
    t.equal(log!.severityText, 'MEDIUM');
    t.match(log!.attributes, {
      'postern.detector': 'novelty',
      'postern.principal': FRONTEND,
      'postern.workload': 'shop/orders',
      'postern.route': 'list-orders',
      'postern.window.start': '2026-11-26T10:00:00.000Z',
    });
    t.match(JSON.parse(String(log!.body)), {
      detector: 'novelty',
      evidence: { sampleTraceIds: [TRACE] },
    });
    const [span] = receiver.spans();
    t.equal(span!.name, 'exfiltration alert novelty');
    t.match(span!.events, [
      { name: 'postern.exfiltration.alert', attributes: { 'postern.detector': 'novelty' } },
    ]);
    t.match(receiver.points('postern.alerts'), [
      { attributes: { 'postern.detector': 'novelty', 'postern.severity': 'medium' }, value: 1 },
    ]);
  },
);
