import { X509Certificate } from 'node:crypto';
import { readFile } from 'node:fs/promises';
import t from 'tap';
import { Agent, request } from 'undici';
import { createCsr } from '../../certs/csr.ts';
import { uriSansOf } from '../../certs/peer-identity.ts';
import { certificatePoster, clientCredentials, postern, startTestMesh } from '../helpers.ts';

const ORDERS = 'spiffe://cluster.local/ns/shop/sa/orders';
const FRONTEND = 'spiffe://cluster.local/ns/shop/sa/frontend';

t.test('the control plane signs CSRs only for the identity the credential proves', async (t) => {
  const mesh = await startTestMesh(t, '');
  const verifying = new Agent({ connect: { ca: mesh.controlPlane.ca.bundlePem } });
  t.teardown(() => verifying.close());
  const ordersToken = (await readFile(await mesh.tokenFor('orders', 'shop'), 'utf8')).trim();
  const frontendToken = (await readFile(await mesh.tokenFor('frontend', 'shop'), 'utf8')).trim();

  const post = certificatePoster(t, mesh);

  /** An agent presenting the SVID that `token` bought for `spiffeId`, as a sidecar renews with it. */
  const bootstrapped = async (spiffeId: string, token: string) => {
    const first = await createCsr(spiffeId);
    const issued = await post({ csr: first.csrPem, token });
    return new Agent({
      connect: {
        ca: mesh.controlPlane.ca.bundlePem,
        cert: issued.body.certificateChain,
        key: first.keyPem,
      },
    });
  };

  await t.test(
    'a CSR with its own token gets a short-lived certificate whose only URI SAN is its SPIFFE ID',
    async (t) => {
      const { csrPem } = await createCsr(ORDERS);
      const res = await post({ csr: csrPem, token: ordersToken });
      t.equal(res.status, 200);
      t.equal(res.body.spiffeId, ORDERS);
      const cert = new X509Certificate(res.body.certificateChain);
      t.same(uriSansOf(cert.raw), [ORDERS]);
      t.ok(
        cert.verify(new X509Certificate(mesh.controlPlane.ca.certPem).publicKey),
        'signed by the mesh CA',
      );
      t.ok(
        Date.parse(cert.validTo) - Date.now() <= 3600_000 + 1000,
        'valid for the configured SVID lifetime',
      );
    },
  );

  await t.test('a CSR asking for another identity is refused', async (t) => {
    const { csrPem } = await createCsr(FRONTEND);
    const res = await post({ csr: csrPem, token: ordersToken });
    t.equal(res.status, 403);
    t.equal(res.body.error?.code, 'POSTERN_CSR_REJECTED');
    t.match(res.body.error?.message, `asks for ${FRONTEND} but the credential proves ${ORDERS}`);
  });

  await t.test("a CSR for orders presented with frontend's token is refused", async (t) => {
    const { csrPem } = await createCsr(ORDERS);
    const res = await post({ csr: csrPem, token: frontendToken });
    t.equal(res.status, 403);
    t.equal(res.body.error?.code, 'POSTERN_CSR_REJECTED');
  });

  await t.test('an unknown token, or no credential at all, is unauthenticated', async (t) => {
    const { csrPem } = await createCsr(ORDERS);
    t.equal((await post({ csr: csrPem, token: 'pst_not-a-real-token' })).status, 401);
    t.equal((await post({ csr: csrPem })).status, 401);
  });

  await t.test('a malformed CSR is refused with a clear error', async (t) => {
    const res = await post({ csr: 'not a csr', token: ordersToken });
    t.equal(res.status, 403);
    t.match(res.body.error?.message, /not a PEM-encoded PKCS#10/);
  });

  await t.test('a renewal authenticates with the current SVID instead of a token', async (t) => {
    const withSvid = await bootstrapped(ORDERS, ordersToken);
    t.teardown(() => withSvid.close());
    const renewed = await post({ csr: (await createCsr(ORDERS)).csrPem }, withSvid);
    t.equal(renewed.status, 200);
    t.equal(renewed.body.spiffeId, ORDERS);
    const other = await post({ csr: (await createCsr(FRONTEND)).csrPem }, withSvid);
    t.equal(other.status, 403, 'an SVID cannot renew into another identity');
  });

  await t.test('the snapshot watch needs an SVID bound to the workload it registers', async (t) => {
    const anonymous = await request(`${mesh.controlPlaneUrl}/v1/snapshots?workload=orders`, {
      dispatcher: verifying,
    });
    t.equal(anonymous.statusCode, 401);
    await anonymous.body.dump();
    const ordersSvid = await clientCredentials(mesh.controlPlane.ca, ORDERS);
    const asOrders = new Agent({ connect: ordersSvid });
    t.teardown(() => asOrders.close());
    const hijack = await request(
      `${mesh.controlPlaneUrl}/v1/snapshots?workload=frontend&address=127.0.0.1:1`,
      { dispatcher: asOrders },
    );
    t.equal(hijack.statusCode, 403, 'orders cannot register as frontend');
    await hijack.body.dump();
  });

  await t.test('a revoked identity can no longer renew with its still-valid SVID', async (t) => {
    const billingToken = (await readFile(await mesh.tokenFor('billing', 'shop'), 'utf8')).trim();
    const BILLING = 'spiffe://cluster.local/ns/shop/sa/billing';
    const withSvid = await bootstrapped(BILLING, billingToken);
    t.teardown(() => withSvid.close());
    t.equal(
      (await post({ csr: (await createCsr(BILLING)).csrPem }, withSvid)).status,
      200,
      'renews before revocation',
    );
    const revoke = postern('token', 'revoke', '--state', mesh.stateDir, '--spiffe-id', BILLING);
    t.equal(revoke.status, 0, revoke.stderr);
    const refused = await post({ csr: (await createCsr(BILLING)).csrPem }, withSvid);
    t.equal(refused.status, 401);
    t.match(refused.body.error?.message, /no bootstrap binding any more \(revoked\)/);
    t.equal(
      (await post({ csr: (await createCsr(BILLING)).csrPem, token: billingToken })).status,
      401,
      'nor bootstrap with the token',
    );
  });

  await t.test('the trust bundle is served to anyone who asks', async (t) => {
    const res = await request(`${mesh.controlPlaneUrl}/v1/trust-bundle`, { dispatcher: verifying });
    t.equal(await res.body.text(), mesh.controlPlane.ca.bundlePem);
  });
});
