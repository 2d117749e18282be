import { once } from 'node:events';
import { writeFile } from 'node:fs/promises';
import type { AddressInfo } from 'node:net';
import { join } from 'node:path';
import { connect, createServer, type TLSSocket } from 'node:tls';
import t, { type Test } from 'tap';
import { UPSTREAM_LIMITS } from '../../common/connection-limits.ts';
import { TLS_POLICY } from '../../common/tls-policy.ts';
import { ControlPlaneClient } from '../../sidecar/control-plane-client.ts';
import { MeshConnections } from '../../sidecar/upstream/mesh-connections.ts';
import {
  clientCredentials,
  type PemCredentials,
  startEchoApp,
  startTestMesh,
  TESTER,
  workloadCredentials,
} from '../helpers.ts';

const ORDERS = 'spiffe://cluster.local/ns/shop/sa/orders';
// A TLS 1.2 suite Node offers by default that is not AEAD (AES-CBC with HMAC).
const CBC_SUITE = 'ECDHE-ECDSA-AES128-SHA256';
const GCM_SUITE = 'ECDHE-ECDSA-AES128-GCM-SHA256';

/** Handshakes with `port` as a client limited to `options`; resolves with the negotiated protocol and suite, or the error. */
function handshake(
  port: number,
  credentials: Partial<PemCredentials> & { ca: string },
  options: { maxVersion?: 'TLSv1.2' | 'TLSv1.1'; minVersion?: 'TLSv1.1'; ciphers?: string },
): Promise<{ protocol?: string | null; cipher?: string; error?: string }> {
  return new Promise((resolve) => {
    const socket: TLSSocket = connect({
      host: '127.0.0.1',
      port,
      ...credentials,
      ...options,
      checkServerIdentity: () => undefined,
    });
    socket.once('secureConnect', () => {
      resolve({ protocol: socket.getProtocol(), cipher: socket.getCipher().name });
      socket.destroy();
    });
    socket.once('error', (error: NodeJS.ErrnoException) =>
      resolve({ error: error.code ?? error.message }),
    );
  });
}

t.test('every listener speaks TLS 1.2+ with AEAD suites only', async (t) => {
  const mesh = await startTestMesh(t, '');
  const app = await startEchoApp(t);
  const sidecar = await mesh.startSidecar({
    workload: 'orders',
    namespace: 'shop',
    appPort: app.port,
  });
  const tester = await clientCredentials(mesh.controlPlane.ca, TESTER);
  // The gateway's server certificate: any the operator brings; here one from the mesh CA, which the client trusts.
  const server = await workloadCredentials(mesh.controlPlane.ca, 'edge', 'shop');
  await writeFile(join(mesh.dir, 'edge.crt'), server.cert);
  await writeFile(join(mesh.dir, 'edge.key'), server.key);
  const gateway = await mesh.startGateway({
    workload: 'edge',
    namespace: 'shop',
    tlsCertFile: join(mesh.dir, 'edge.crt'),
    tlsKeyFile: join(mesh.dir, 'edge.key'),
  });
  const listeners = {
    'the inbound listener': sidecar.inboundPort,
    'the control plane': mesh.controlPlane.apiPort,
    'the gateway': gateway.port,
  };
  for (const [name, port] of Object.entries(listeners)) {
    const cbc = await handshake(port, tester, { maxVersion: 'TLSv1.2', ciphers: CBC_SUITE });
    t.ok(cbc.error, `${name} refuses a TLS 1.2 CBC suite (${cbc.error})`);
    // SECLEVEL=0 lets this client offer TLS 1.1 at all, so the refusal is the server's.
    const old = await handshake(port, tester, {
      minVersion: 'TLSv1.1',
      maxVersion: 'TLSv1.1',
      ciphers: 'DEFAULT@SECLEVEL=0',
    });
    t.ok(old.error, `${name} refuses TLS 1.1 (${old.error})`);
    const gcm = await handshake(port, tester, { maxVersion: 'TLSv1.2', ciphers: GCM_SUITE });
    t.same(gcm, { protocol: 'TLSv1.2', cipher: GCM_SUITE }, `${name} accepts TLS 1.2 with AES-GCM`);
    const modern = await handshake(port, tester, {});
    t.equal(modern.protocol, 'TLSv1.3', `${name} prefers TLS 1.3`);
  }
});

/** A TLS server that offers only a CBC suite over TLS 1.2, and records what the clients' handshakes ended in. */
async function cbcOnlyServer(t: Test, credentials: PemCredentials) {
  const refusals: string[] = [];
  const server = createServer({
    ...credentials,
    maxVersion: 'TLSv1.2',
    ciphers: CBC_SUITE,
    requestCert: false,
  });
  server.on('tlsClientError', (error: NodeJS.ErrnoException) =>
    refusals.push(error.code ?? error.message),
  );
  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  t.teardown(() => server.close());
  return { port: (server.address() as AddressInfo).port, refusals };
}

t.test("the sidecar's clients refuse a server that offers only a CBC suite", async (t) => {
  const mesh = await startTestMesh(t, '');
  const server = await cbcOnlyServer(
    t,
    await workloadCredentials(mesh.controlPlane.ca, 'orders', 'shop'),
  );

  const client = new ControlPlaneClient(
    `https://127.0.0.1:${server.port}`,
    mesh.controlPlane.ca.bundlePem,
  );
  t.teardown(() => client.close());
  await t.rejects(client.requestCertificate({ csr: 'unused' }), 'the control-plane client');

  const svid = await clientCredentials(mesh.controlPlane.ca, TESTER);
  const peers = new MeshConnections(
    {
      spiffeId: TESTER,
      certPem: svid.cert,
      keyPem: svid.key,
      bundlePem: svid.ca,
      notBeforeMs: 0,
      notAfterMs: Number.MAX_SAFE_INTEGER,
    },
    () => undefined,
    UPSTREAM_LIMITS,
  );
  const pool = peers.poolFor({
    service: 'orders',
    namespace: 'shop',
    address: `127.0.0.1:${server.port}`,
    spiffeId: ORDERS,
  });
  t.teardown(() => pool.close());
  await t.rejects(pool.request({ method: 'GET', path: '/' }), 'the mesh connection to a peer');
  t.equal(
    server.refusals.length,
    2,
    `both handshakes failed on the server too (${server.refusals.join(', ')})`,
  );
});

t.test('the policy itself: TLS 1.2 minimum, and no suite outside AEAD', (t) => {
  t.equal(TLS_POLICY.minVersion, 'TLSv1.2');
  for (const suite of TLS_POLICY.ciphers.split(':'))
    t.match(suite, /GCM|CHACHA20-POLY1305|CHACHA20_POLY1305/);
  t.end();
});
