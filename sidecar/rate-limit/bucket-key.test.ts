import t from 'tap';
import { bucketKey, sourceNetwork, WITHOUT_KEY } from './bucket-key.ts';

const caller = {
  principal: 'spiffe://cluster.local/ns/shop/sa/frontend',
  claims: { sub: 'alice', tenant: 'acme', level: 3, groups: ['a', 'b'] },
  sourceAddress: '10.1.2.3',
};

t.test('each key kind counts by what the sidecar verified', async (t) => {
  t.equal(bucketKey({ kind: 'principal' }, caller), caller.principal);
  t.equal(bucketKey({ kind: 'subject' }, caller), 'alice');
  t.equal(bucketKey({ kind: 'claim', claim: 'tenant' }, caller), 'acme');
  t.equal(
    bucketKey({ kind: 'claim', claim: 'level' }, caller),
    '3',
    'a number claim counts by its text',
  );
  t.equal(bucketKey({ kind: 'source-ip' }, caller), '10.1.2.3');
  t.equal(bucketKey({ kind: 'route' }, caller), WITHOUT_KEY, 'one bucket for the route');
});

t.test('callers without the identity a key names share one bucket rather than none', async (t) => {
  const anonymous = { principal: undefined, claims: undefined, sourceAddress: '10.1.2.3' };
  t.equal(bucketKey({ kind: 'principal' }, anonymous), WITHOUT_KEY);
  t.equal(bucketKey({ kind: 'subject' }, anonymous), WITHOUT_KEY);
  t.equal(bucketKey({ kind: 'consumer' }, anonymous), WITHOUT_KEY);
  t.equal(
    bucketKey({ kind: 'claim', claim: 'groups' }, caller),
    WITHOUT_KEY,
    'a list is no identity',
  );
  t.equal(bucketKey({ kind: 'claim', claim: 'missing' }, caller), WITHOUT_KEY);
});

t.test('an IPv6 caller counts by its /64, however the address is written', async (t) => {
  const network = '2001:db8:1:2::/64';
  for (const address of [
    '2001:db8:1:2::1',
    '2001:0db8:0001:0002:ffff:ffff:ffff:ffff',
    '2001:db8:1:2:0:0:0:7',
    '2001:db8:1:2::1%eth0',
  ]) {
    t.equal(sourceNetwork(address), network, address);
  }
  t.equal(sourceNetwork('::1'), '0:0:0:0::/64');
  t.equal(sourceNetwork('fe80::1'), 'fe80:0:0:0::/64');
  t.equal(sourceNetwork('64:ff9b::192.0.2.33'), '64:ff9b:0:0::/64', 'an embedded IPv4 tail');
  t.equal(sourceNetwork('2001:db8:1:3::1') === network, false, 'another /64 is another bucket');
  t.equal(sourceNetwork('192.0.2.1'), '192.0.2.1', 'IPv4 as it is');
});
