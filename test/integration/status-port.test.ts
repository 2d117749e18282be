import { createServer } from 'node:http';
import t from 'tap';
import { request } from 'undici';
import { listen } from '../../common/listen.ts';
import { freePort, ordersPolicyYaml, startTestMesh, untilReady } from '../helpers.ts';

t.test(
  "the status port answers the kubelet: the sidecar's readiness, and the app's own probes run on loopback",
  async (t) => {
    // The app: /ready is fine, /warming answers 503 (not ready yet).
    const app = createServer((req, res) => {
      res.writeHead(req.url === '/warming' ? 503 : 200).end();
    });
    const appPort = await listen(app, 0, '127.0.0.1');
    t.teardown(() => {
      app.closeAllConnections();
      app.close();
    });
    const mesh = await startTestMesh(t, ordersPolicyYaml(['"*"']));
    const closed = await freePort();
    const sidecar = await mesh.startSidecar({
      workload: 'orders',
      namespace: 'shop',
      appPort,
      statusPort: 0,
      appProbes: new Map([
        ['/app-health/orders/readyz', { path: '/ready', port: appPort }],
        ['/app-health/orders/startupz', { path: '/warming', port: appPort }],
        ['/app-health/orders/livez', { path: '/', port: closed }],
        ['/app-health/orders/tcp-open', { tcp: true, port: appPort }],
        ['/app-health/orders/tcp-closed', { tcp: true, port: closed }],
      ]),
    });
    await untilReady(sidecar.adminPort);
    const status = async (path: string) => {
      const response = await request(`http://127.0.0.1:${sidecar.statusPort}${path}`);
      return { code: response.statusCode, body: await response.body.text() };
    };
    t.equal((await status('/healthz/ready')).code, 200, "the sidecar's readiness");
    t.equal((await status('/app-health/orders/readyz')).code, 200, "the app's probe passed on");
    t.equal(
      (await status('/app-health/orders/startupz')).code,
      503,
      "the app's 503 is the probe's",
    );
    const down = await status('/app-health/orders/livez');
    t.equal(down.code, 503, 'an app that does not answer fails the probe');
    t.match(down.body, /POSTERN_APP_PROBE_FAILED/);
    t.equal(
      (await status('/app-health/orders/tcp-open')).code,
      200,
      'a TCP probe: the port accepts',
    );
    t.equal((await status('/app-health/orders/tcp-closed')).code, 503, 'and a port that does not');
    t.equal((await status('/config')).code, 404, 'nothing else is served there');
    t.equal((await status('/app-health/other/readyz')).code, 404);
  },
);
