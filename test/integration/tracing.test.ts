import { createServer, type IncomingHttpHeaders } from 'node:http';
import t from 'tap';
import { ProxyAgent, request } from 'undici';
import { listen } from '../../common/listen.ts';
import {
  adminConfig,
  clientCredentials,
  eventually,
  mtlsAgent,
  type SidecarProcess,
  spawnSidecar,
  startEchoApp,
  startTestMesh,
  TESTER,
  type TestMesh,
  untilReady,
} from '../helpers.ts';
import { startOtlpReceiver } from '../otlp-receiver.ts';

const FRONTEND = 'spiffe://cluster.local/ns/shop/sa/frontend';
const POLICIES = `
apiVersion: postern.dev/v1alpha1
kind: RoutePolicy
metadata: { name: frontend-site, namespace: shop }
spec:
  selector: { matchLabels: { app: frontend } }
  routes:
    - name: site
      match: { path: { prefix: / } }
      allow: [{ principals: ["${TESTER}"] }]
---
apiVersion: postern.dev/v1alpha1
kind: RoutePolicy
metadata: { name: orders-api, namespace: shop }
spec:
  selector: { matchLabels: { app: orders } }
  routes:
    - name: get-order
      match: { methods: [GET], path: { template: "/orders/{id}" } }
      allow: [{ principals: ["${FRONTEND}"] }]
`;
// The caller's own trace: the sidecars must continue it, not start another.
const CALLER_TRACE = '4bf92f3577b34da6a3ce929d0e0e4736';
const CALLER_SPAN = '00f067aa0ba902b7';

/** Sidecar processes export to the test's receiver in OTLP/HTTP JSON, quickly. */
function exportingTo(url: string): Record<string, string> {
  return {
    OTEL_EXPORTER_OTLP_ENDPOINT: url,
    OTEL_EXPORTER_OTLP_PROTOCOL: 'http/json',
    OTEL_LOGS_EXPORTER: 'none',
    OTEL_BSP_SCHEDULE_DELAY: '100',
    OTEL_METRIC_EXPORT_INTERVAL: '300',
  };
}

async function sidecarProcess(
  t: { teardown(fn: () => unknown): void },
  mesh: TestMesh,
  workload: string,
  appPort: number,
  env: Record<string, string>,
): Promise<SidecarProcess> {
  const sidecar = await spawnSidecar(t, {
    POSTERN_CONTROL_PLANE: mesh.controlPlaneUrl,
    POSTERN_CA_FILE: mesh.caFile,
    POSTERN_BOOTSTRAP_TOKEN_FILE: await mesh.tokenFor(workload, 'shop'),
    POSTERN_APP_PORT: String(appPort),
    POSTERN_WORKLOAD: workload,
    POSTERN_NAMESPACE: 'shop',
    POSTERN_SERVICE_ACCOUNT: workload,
    POSTERN_LABELS: `app=${workload}`,
    ...env,
  });
  await untilReady(sidecar.adminPort);
  return sidecar;
}

/**
 * frontend's app, as an instrumented app behaves: it serves /, and calls
 * orders through its sidecar's outbound listener with the trace context it
 * was called with.
 */
async function frontendApp(
  t: { teardown(fn: () => unknown): void },
  outboundPort: () => number,
): Promise<number> {
  let proxy: ProxyAgent | undefined;
  const server = createServer(async (req, res) => {
    proxy ??= new ProxyAgent(`http://127.0.0.1:${outboundPort()}`);
    const headers: Record<string, string> = {};
    if (req.headers.traceparent) headers.traceparent = String(req.headers.traceparent);
    const orders = await request('http://orders/orders/17', { dispatcher: proxy, headers });
    res.writeHead(orders.statusCode, { 'content-type': 'application/json' });
    res.end(await orders.body.text());
  });
  const port = await listen(server, 0, '127.0.0.1');
  t.teardown(async () => {
    await proxy?.close();
    await new Promise((resolve) => server.close(resolve));
  });
  return port;
}

t.test(
  'one trace runs caller → frontend sidecar → frontend app → its sidecar → orders sidecar → orders, exported over OTLP',
  async (t) => {
    const receiver = await startOtlpReceiver(t);
    const mesh = await startTestMesh(t, POLICIES);
    const orders = await startEchoApp(t);
    let frontendOutbound = 0;
    const frontendPort = await frontendApp(t, () => frontendOutbound);
    const env = exportingTo(receiver.url);
    await sidecarProcess(t, mesh, 'orders', orders.port, env);
    const frontend = await sidecarProcess(t, mesh, 'frontend', frontendPort, env);
    frontendOutbound = frontend.outboundPort;
    t.match(await adminConfig(frontend.adminPort), { telemetry: { openTelemetry: true } });

    const tester = mtlsAgent(await clientCredentials(mesh.controlPlane.ca, TESTER));
    t.teardown(() => tester.close());
    const response = await request(`https://127.0.0.1:${frontend.inboundPort}/`, {
      dispatcher: tester,
      headers: { traceparent: `00-${CALLER_TRACE}-${CALLER_SPAN}-01` },
    });
    const echoed = (await response.body.json()) as { headers: IncomingHttpHeaders };
    t.equal(response.statusCode, 200);

    await eventually(() => receiver.spans().length >= 3, 15_000);
    const spans = receiver.spans();
    t.ok(receiver.contentTypes.has('application/json'), 'the exporters sent OTLP/HTTP JSON');
    t.equal(spans.length, 3, 'one span per hop through a sidecar');
    const inFrontend = spans.find((s) => s.service === 'frontend' && s.kind === 2)!;
    const outOfFrontend = spans.find((s) => s.service === 'frontend' && s.kind === 3)!;
    const inOrders = spans.find((s) => s.service === 'orders' && s.kind === 2)!;
    t.ok(inFrontend && outOfFrontend && inOrders, 'a server span, a client span, a server span');
    for (const span of spans)
      t.equal(span.traceId, CALLER_TRACE, `${span.name}: the caller's trace`);
    t.equal(inFrontend.parentSpanId, CALLER_SPAN, "frontend's server span continues the caller's");
    t.equal(
      outOfFrontend.parentSpanId,
      inFrontend.spanId,
      "frontend's client span is a child of its server span (the app passed the context on)",
    );
    t.equal(inOrders.parentSpanId, outOfFrontend.spanId, "orders' server span is its child");
    t.match(
      echoed.headers.traceparent,
      new RegExp(`^00-${CALLER_TRACE}-${inOrders.spanId}-01$`),
      "orders' app is handed the context of orders' server span",
    );

    t.equal(inOrders.name, 'GET get-order', 'server spans are named {method} {http.route}');
    t.match(inOrders.attributes, {
      'http.request.method': 'GET',
      'http.route': 'get-order',
      'http.response.status_code': 200,
      'url.path': '/orders/17',
      'url.scheme': 'https',
      'server.address': 'orders',
      'postern.peer.principal': FRONTEND,
      'postern.policy': 'shop/orders-api',
      'postern.route': 'get-order',
      'postern.authz.decision': 'allow',
    });
    t.match(outOfFrontend.attributes, {
      'http.request.method': 'GET',
      'http.response.status_code': 200,
      'server.address': 'orders',
      'url.path': '/orders/17',
      'postern.destination.principal': 'spiffe://cluster.local/ns/shop/sa/orders',
    });
    t.match(inFrontend.attributes, { 'postern.peer.principal': TESTER, 'http.route': 'site' });

    // Each sidecar process exports its metrics on its own schedule.
    await eventually(
      () =>
        receiver.points('http.server.request.duration').some((p) => p.service === 'orders') &&
        receiver.points('http.client.request.duration').some((p) => p.service === 'frontend'),
      15_000,
    );
    const duration = receiver
      .points('http.server.request.duration')
      .find((p) => p.service === 'orders')!;
    t.equal(duration.unit, 's');
    t.same(
      duration.attributes,
      {
        'http.request.method': 'GET',
        'http.response.status_code': 200,
        'http.route': 'get-order',
      },
      'metric attributes are the bounded set: method, status, route (never the path)',
    );
    t.equal(duration.count, 1);
    const responseSize = receiver
      .points('http.server.response.body.size')
      .find((p) => p.service === 'orders')!;
    t.equal(responseSize.unit, 'By');
    t.ok(responseSize.sum! > 0, 'response bytes measured');
    t.ok(
      receiver.points('http.client.request.duration').some((p) => p.service === 'frontend'),
      "frontend's outbound call is measured as a client request",
    );
  },
);

t.test(
  'without an exporter configured the sidecar makes no spans and passes the trace context untouched',
  async (t) => {
    const mesh = await startTestMesh(t, POLICIES);
    const orders = await startEchoApp(t);
    const sidecar = await sidecarProcess(t, mesh, 'orders', orders.port, {});
    const frontend = mtlsAgent(await clientCredentials(mesh.controlPlane.ca, FRONTEND));
    t.teardown(() => frontend.close());
    const traceparent = `00-${CALLER_TRACE}-${CALLER_SPAN}-01`;
    const response = await request(`https://127.0.0.1:${sidecar.inboundPort}/orders/1`, {
      dispatcher: frontend,
      headers: { traceparent, tracestate: 'vendor=x' },
    });
    const echoed = (await response.body.json()) as { headers: IncomingHttpHeaders };
    t.match(
      await adminConfig(sidecar.adminPort),
      { telemetry: { openTelemetry: false, accessLog: 'off' } },
      'the SDK was not started',
    );
    t.equal(echoed.headers.traceparent, traceparent);
    t.equal(echoed.headers.tracestate, 'vendor=x');
    const metrics = await (
      await request(`http://127.0.0.1:${sidecar.adminPort}/metrics`)
    ).body.text();
    t.match(
      metrics,
      /http_server_request_duration_seconds_count\{direction="inbound",policy="shop\/orders-api",route="get-order"\} 1/,
      'Prometheus on the admin port still has the request, by route',
    );
  },
);
