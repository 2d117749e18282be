import t from 'tap';
import { canonicalTarget } from './request-target.ts';

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

t.test('encoded slash, backslash, dot, percent and NUL are rejected', async (t) => {
  for (const raw of ['/a%2fb', '/a%2Fb', '/a%5cb', '/%2e%2e/admin', '/a%252fb', '/a%00b']) {
    t.match(canonical(raw), /^rejected: the path has an encoded/, raw);
  }
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

t.test('servlet-style parameters on a dot segment are rejected', async (t) => {
  t.match(canonical('/orders/..;/admin'), /; parameters on a dot segment/);
  t.match(canonical('/orders/.;x/admin'), /; parameters on a dot segment/);
  t.equal(canonical('/orders;v=1'), '/orders;v=1');
});

t.test('a target that is not origin-form is rejected', async (t) => {
  t.match(canonical('*'), /must start with \//);
  t.match(canonical('http://orders/x'), /must start with \//);
});
