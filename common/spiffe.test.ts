import t from 'tap';
import { formatSpiffeId, isDnsSubdomain, isSpiffeId, parseSpiffeId } from './spiffe.ts';

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

t.test('a look-alike of a SPIFFE ID is refused, never read as the ID it resembles', async (t) => {
  const id = 'spiffe://cluster.local/ns/default/sa/a';
  const lookAlikes: Record<string, string> = {
    'a trailing slash': `${id}/`,
    'a dot segment': 'spiffe://cluster.local/ns/default/sa/./a',
    'a dot-dot segment': 'spiffe://cluster.local/ns/default/sa/b/../a',
    'an empty segment': 'spiffe://cluster.local/ns//default/sa/a',
    'percent-encoding': 'spiffe://cluster.local/ns/default/sa/%61',
    'an upper-case scheme': 'SPIFFE://cluster.local/ns/default/sa/a',
    'an upper-case trust domain': 'spiffe://CLUSTER.local/ns/default/sa/a',
    'an upper-case service account': 'spiffe://cluster.local/ns/default/sa/A',
    'a query': `${id}?x=1`,
    'a fragment': `${id}#x`,
    'a port': 'spiffe://cluster.local:8443/ns/default/sa/a',
    'user info': 'spiffe://a@cluster.local/ns/default/sa/a',
    'an empty trust-domain label': 'spiffe://cluster..local/ns/default/sa/a',
    'an empty service-account label': 'spiffe://cluster.local/ns/default/sa/a..b',
    'a NUL octet': `${id}\u0000`,
    whitespace: ` ${id}`,
  };
  for (const [trick, value] of Object.entries(lookAlikes)) {
    t.notOk(isSpiffeId(value), trick);
    t.throws(() => parseSpiffeId(value), { code: 'POSTERN_INVALID_SPIFFE_ID' }, trick);
  }
  t.ok(isSpiffeId(id));
});

t.test('a DNS subdomain is labels joined by single dots, 253 characters at most', async (t) => {
  t.ok(isDnsSubdomain('a.b-c.d'));
  t.notOk(isDnsSubdomain('a..b'));
  t.notOk(isDnsSubdomain('a.-b'));
  t.notOk(isDnsSubdomain('.a'));
  t.ok(isDnsSubdomain(`${'a'.repeat(63)}.${'b'.repeat(63)}.${'c'.repeat(63)}.${'d'.repeat(61)}`));
  t.notOk(isDnsSubdomain('a.'.repeat(127)));
  t.notOk(isDnsSubdomain(`${'a'.repeat(250)}.bcd`), '254 characters');
});
