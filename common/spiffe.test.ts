import t from 'tap';
import { formatSpiffeId, parseSpiffeId } from './spiffe.ts';

t.test('a workload SPIFFE ID round-trips through parse and format', async (t) => {
  const id = 'spiffe://cluster.local/ns/shop/sa/orders';
  t.same(parseSpiffeId(id), {
    trustDomain: 'cluster.local',
    namespace: 'shop',
    serviceAccount: 'orders',
  });
  t.equal(formatSpiffeId(parseSpiffeId(id)), id);
});

t.test('IDs that are not spiffe://<td>/ns/<ns>/sa/<sa> are refused with the reason', async (t) => {
  t.throws(() => parseSpiffeId('https://cluster.local/ns/a/sa/b'), {
    code: 'POSTERN_INVALID_SPIFFE_ID',
    message: /must start with spiffe:\/\//,
  });
  t.throws(() => parseSpiffeId('spiffe://cluster.local/ns/a'), {
    message: /\/ns\/<namespace>\/sa\/<service-account>/,
  });
  t.throws(() => parseSpiffeId('spiffe://cluster.local/ns/a/sa/b/extra'), {
    message: /the path must be/,
  });
  t.throws(() => parseSpiffeId('spiffe://Cluster.Local/ns/a/sa/b'), { message: /trust domain/ });
  t.throws(() => parseSpiffeId('spiffe://cluster.local/ns/A_B/sa/b'), { message: /namespace/ });
});

t.test('a service account may be a DNS subdomain (dots allowed)', async (t) => {
  t.same(parseSpiffeId('spiffe://cluster.local/ns/shop/sa/build.bot').serviceAccount, 'build.bot');
});
