/**
 * A route's maxRequestBytes at the inbound sidecar (the gateway's per-route
 * limit is tested in gateway-security.test.ts): a declared body over it gets
 * 413 before the app sees anything, a chunked one is cut at the limit, and
 * a route without one takes what it is sent.
 */
import t from 'tap';
import { clientCredentials, startEchoApp, startTestMesh, TESTER, untilReady } from '../helpers.ts';
import { mtlsExchange, STILL_OPEN } from '../raw-http.ts';

const POLICY = `
apiVersion: postern.dev/v1alpha1
kind: RoutePolicy
metadata: { name: orders-api, namespace: shop }
spec:
  selector: { matchLabels: { app: orders } }
  routes:
    - name: small
      match: { path: { prefix: /small } }
      maxRequestBytes: "16"
      allow:
        - principals: ["*"]
    - name: open
      match: { path: { prefix: /open } }
      allow:
        - principals: ["*"]
`;

t.test(
  'a route’s maxRequestBytes: 413 for a longer declared body, a longer chunked body cut, other routes unlimited',
  async (t) => {
    const mesh = await startTestMesh(t, POLICY);
    const app = await startEchoApp(t);
    const orders = await mesh.startSidecar({
      workload: 'orders',
      namespace: 'shop',
      appPort: app.port,
    });
    await untilReady(orders.adminPort);
    const credentials = await clientCredentials(mesh.controlPlane.ca, TESTER);
    const send = (raw: string) => mtlsExchange(orders.inboundPort, credentials, raw);
    const body = 'x'.repeat(40);

    const fits = await send(
      `POST /small HTTP/1.1\r\nHost: orders\r\nContent-Length: 16\r\nConnection: close\r\n\r\n${body.slice(0, 16)}`,
    );
    t.match(fits, /^HTTP\/1\.1 200/, 'at the limit: forwarded');

    const before = app.requests.length;
    const declared = await send(
      `POST /small HTTP/1.1\r\nHost: orders\r\nContent-Length: 40\r\n\r\n${body}`,
    );
    t.match(declared, /^HTTP\/1\.1 413/);
    t.match(declared, /POSTERN_BODY_TOO_LARGE/);
    t.notMatch(
      declared,
      STILL_OPEN,
      'and the connection closed (the unread body is not a next request)',
    );
    t.equal(app.requests.length, before, 'the app saw nothing');

    const chunked = await send(
      `POST /small HTTP/1.1\r\nHost: orders\r\nTransfer-Encoding: chunked\r\n\r\n28\r\n${body}\r\n0\r\n\r\n`,
    );
    t.match(chunked, /^HTTP\/1\.1 413/, 'a chunked body over the limit is refused');
    t.notOk(
      app.requests.slice(before).some((req) => req.complete),
      'and never reaches the app whole',
    );

    const open = await send(
      `POST /open HTTP/1.1\r\nHost: orders\r\nContent-Length: 40\r\nConnection: close\r\n\r\n${body}`,
    );
    t.match(open, /^HTTP\/1\.1 200/, 'a route without a limit takes it');
  },
);
