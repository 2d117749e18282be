import t from 'tap';
import { canonicalTarget } from './canonical-path.ts';

const canonical = (raw: string) => {
  const result = canonicalTarget(raw);
  return result.ok ? result.target.path + result.target.search : `rejected: ${result.reason}`;
};

t.test('an ordinary path and query pass through unchanged', async (t) => {
  t.equal(canonical('/orders/7?expand=items&x=%2F'), '/orders/7?expand=items&x=%2F');
  t.equal(canonical('/'), '/');
});

t.test('repeated slashes are merged', async (t) => {
  t.equal(canonical('//orders///7'), '/orders/7');
});

t.test('dot segments are removed, keeping a trailing slash', async (t) => {
  t.equal(canonical('/orders/./7/../8'), '/orders/8');
  t.equal(canonical('/orders/7/..'), '/orders/');
  t.equal(canonical('/a/b/.'), '/a/b/');
});

t.test('climbing above the root is rejected', async (t) => {
  t.match(canonical('/../etc/passwd'), /rejected: .*above the root/);
});

t.test('encoded slash, backslash and NUL are rejected', async (t) => {
  for (const raw of ['/a%2fb', '/a%2Fb', '/a%5cb', '/a%5Cb', '/a%00b']) {
    t.match(canonical(raw), /^rejected: the path has an encoded \/, \\ or NUL/, raw);
  }
});

t.test(
  'escapes of unreserved characters are decoded once, then dot segments removed',
  async (t) => {
    t.equal(canonical('/%6Frders/%37'), '/orders/7');
    t.equal(canonical('/orders/%2e%2e/admin'), '/admin');
    t.equal(canonical('/orders/%2E/7'), '/orders/7');
    t.equal(canonical('/a%7Eb%2Dc%5F'), '/a~b-c_');
  },
);

t.test('other escapes are kept, with their hex upper-cased', async (t) => {
  t.equal(canonical('/a%20b%3bc%3F'), '/a%20b%3Bc%3F');
  t.equal(canonical('/100%25'), '/100%25');
});

t.test(
  'a double-encoded escape, which an app could decode a second time, is rejected',
  async (t) => {
    t.match(canonical('/a%252fb'), /double-encoded/);
    t.match(canonical('/a%252e%252e/admin'), /double-encoded/);
  },
);

t.test('escaped UTF-8 must be valid and shortest-form', async (t) => {
  t.equal(canonical('/caf%c3%a9'), '/caf%C3%A9');
  t.match(canonical('/%c0%af'), /invalid or overlong UTF-8/, 'overlong /');
  t.match(canonical('/%e0%80%ae'), /invalid or overlong UTF-8/, 'overlong .');
  t.match(canonical('/%c3'), /invalid or overlong UTF-8/, 'truncated');
  t.match(canonical('/%ed%a0%80'), /invalid or overlong UTF-8/, 'surrogate');
});

t.test(
  'a raw backslash, a fragment, a control character or a malformed escape is rejected',
  async (t) => {
    t.match(canonical('/a\\b'), /backslash/);
    t.match(canonical('/a#b'), /fragment/);
    t.match(canonical('/a\u0001b'), /control/);
    t.match(canonical('/a%zzb'), /malformed/);
    t.match(canonical('/a%2'), /malformed/);
  },
);

t.test('path parameters are rejected, on dot segments and on ordinary ones', async (t) => {
  t.match(canonical('/orders/..;/admin'), /has a ;/);
  t.match(canonical('/orders/.;x/admin'), /has a ;/);
  t.match(
    canonical('/orders/export;jsessionid=1'),
    /has a ;/,
    'a servlet app would route this to /orders/export',
  );
  t.equal(canonical('/orders%3Bv=1'), '/orders%3Bv=1', 'an escaped ; is data to every server');
  t.equal(canonical('/orders?a=1;b=2'), '/orders?a=1;b=2', 'the query is not the path');
});

t.test('a target that is not origin-form is rejected', async (t) => {
  t.match(canonical('*'), /must start with \//);
  t.match(canonical('http://orders/x'), /must start with \//);
});

t.test(
  'every byte has one spelling: characters a segment may hold raw are decoded, the rest stay escaped',
  async (t) => {
    t.equal(
      canonical('/v1/users%3AbatchDelete'),
      '/v1/users:batchDelete',
      'so a policy on /v1/users:batchDelete sees it',
    );
    t.equal(canonical('/a%2Bb%40c%21%24%26%27%28%29%2A%2C%3D'), "/a+b@c!$&'()*,=");
    t.equal(canonical('/a%7Bb%7Cc%22'), '/a%7Bb%7Cc%22');
    t.equal(
      canonical('/a%3fb%23c'),
      '/a%3Fb%23c',
      'an escaped ? or # is data, not a query or fragment',
    );
  },
);

t.test('characters a path may not hold raw are rejected, not guessed at', async (t) => {
  for (const raw of [
    '/a{b',
    '/a}b',
    '/a|b',
    '/a^b',
    '/a`b',
    '/a"b',
    '/a<b',
    '/a>b',
    '/a[b',
    '/a]b',
  ]) {
    t.match(canonical(raw), /must be percent-encoded/, raw);
  }
});
