/**
 * Security-review findings on paths and methods, over real sockets: each test
 * is named after the defect it pins down.
 */
import { connect } from 'node:tls';
import t from 'tap';
import { request } from 'undici';
import { clientCredentials, ordersBehindSidecar, type PemCredentials, TESTER } from '../helpers.ts';

const POLICY = `apiVersion: postern.dev/v1alpha1
kind: RoutePolicy
metadata: { name: orders-api, namespace: shop }
spec:
  selector: { matchLabels: { app: orders } }
  routes:
    - name: admin-get
      match: { methods: [GET], path: { prefix: /admin } }
      deny:
        - principals: ["*"]
    - name: everything
      allow:
        - principals: ["*"]
`;

/**
 * Sends raw bytes over mTLS (undici may normalise a target) and collects the
 * reply until the sidecar closes; gives up after 5 s, so a connection the
 * sidecar keeps open shows as `closedByServer: false` instead of a hang.
 */
function exchange(
  port: number,
  credentials: PemCredentials,
  text: string,
): Promise<{ reply: string; closedByServer: boolean }> {
  return new Promise((resolve) => {
    let reply = '';
    let closedByServer = true;
    const socket = connect({
      host: '127.0.0.1',
      port,
      ...credentials,
      checkServerIdentity: () => undefined,
    });
    socket.setTimeout(5000, () => {
      closedByServer = false;
      socket.destroy();
    });
    socket.on('secureConnect', () => socket.write(text));
    socket.on('data', (chunk) => {
      reply += chunk;
    });
    socket.on('error', () => {});
    socket.on('close', () => resolve({ reply, closedByServer }));
  });
}

t.test('paths and methods a security review found passing', async (t) => {
  const { mesh, sidecar, app, agent } = await ordersBehindSidecar(t, POLICY, TESTER);
  const base = `https://127.0.0.1:${sidecar.inboundPort}`;
  const status = async (method: 'GET' | 'HEAD' | 'POST', path: string) => {
    const res = await request(`${base}${path}`, { dispatcher: agent, method });
    await res.body.dump();
    return res.statusCode;
  };

  await t.test(
    'HEAD passed a deny route restricted to GET and the app ran its GET handler; it gets 403',
    async (t) => {
      const before = app.requests.length;
      t.equal(await status('HEAD', '/admin'), 403, 'HEAD /admin is denied as GET is');
      t.equal(await status('HEAD', '/admin/users'), 403, 'and below it');
      t.equal(await status('GET', '/admin'), 403);
      t.equal(app.requests.length, before, 'the app saw none of them');
      t.equal(await status('HEAD', '/public'), 200, 'HEAD elsewhere still reaches the app');
      t.equal(app.requests.at(-1)?.method, 'HEAD');
    },
  );

  await t.test(
    'a path double-encoded through escaped hex digits was forwarded as %252F..%252F; it gets 400 and a closed connection',
    async (t) => {
      const credentials = await clientCredentials(mesh.controlPlane.ca, TESTER);
      const before = app.requests.length;
      for (const target of ['/public/%25%32%46..%25%32%46admin', '/public/%25%34%31']) {
        const { reply, closedByServer } = await exchange(
          sidecar.inboundPort,
          credentials,
          `GET ${target} HTTP/1.1\r\nhost: orders\r\n\r\n`,
        );
        t.match(reply, /^HTTP\/1\.1 400/, target);
        t.match(reply, /double-encoded/, 'saying why');
        t.match(reply, /connection: close/i);
        t.ok(closedByServer, 'the sidecar closed the connection');
      }
      t.equal(app.requests.length, before, 'the app saw nothing');
    },
  );
});
