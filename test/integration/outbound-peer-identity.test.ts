import { createServer } from 'node:https';
import type { AddressInfo } from 'node:net';
import t from 'tap';
import { request } from 'undici';
import { CertificateAuthority } from '../../certs/authority.ts';
import { clientCredentials, startOutboundListener } from '../helpers.ts';

const ORDERS = 'spiffe://cluster.local/ns/shop/sa/orders';
const PAYMENTS = 'spiffe://cluster.local/ns/shop/sa/payments';

t.test(
  'the outbound path refuses a peer whose valid certificate names the wrong SPIFFE ID',
  async (t) => {
    const ca = await CertificateAuthority.create('cluster.local');
    // An impostor at orders' registered address: a real mesh certificate, but payments'.
    const impostorCredentials = await clientCredentials(ca, PAYMENTS);
    let impostorRequests = 0;
    const impostor = createServer({ ...impostorCredentials, requestCert: true }, (_req, res) => {
      impostorRequests++;
      res.end('you should not see this');
    });
    await new Promise<void>((resolve) => impostor.listen(0, '127.0.0.1', resolve));
    t.teardown(() => new Promise((resolve) => impostor.close(resolve)));
    const address = `127.0.0.1:${(impostor.address() as AddressInfo).port}`;
    const { port, state } = await startOutboundListener(t, ca, [
      { service: 'orders', namespace: 'shop', address, spiffeId: ORDERS },
    ]);

    const res = await request(`http://127.0.0.1:${port}/orders`, { headers: { host: 'orders' } });
    t.equal(res.statusCode, 502);
    const body = (await res.body.json()) as { error: { code: string; message: string } };
    t.equal(body.error.code, 'POSTERN_PEER_IDENTITY_MISMATCH');
    t.match(body.error.message, `presented ${PAYMENTS} but ${ORDERS} was expected`);
    t.equal(impostorRequests, 0, 'no request reached the impostor');

    // The same server is accepted when the registry says it is payments: the check is the identity, not the address.
    state.apply({
      version: '1.2',
      hash: 'h2',
      meshDefault: 'deny',
      policies: [],
      registry: [{ service: 'orders', namespace: 'shop', address, spiffeId: PAYMENTS }],
    });
    const accepted = await request(`http://127.0.0.1:${port}/orders`, {
      headers: { host: 'orders' },
    });
    t.equal(accepted.statusCode, 200);
    await accepted.body.dump();
  },
);
