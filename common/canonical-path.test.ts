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

t.test(
  'a double-encoded escape that only appears after decoding (%25 then escaped hex digits) was forwarded; it is rejected',
  async (t) => {
    // Forwarded as /public/%252F..%252Fadmin: an app that decodes twice read ../admin.
    t.match(canonical('/public/%25%32%46..%25%32%46admin'), /^rejected: .*double-encoded/);
    // Forwarded as /public/%2541: an app that decodes twice read A.
    t.match(canonical('/public/%25%34%31'), /^rejected: .*double-encoded/);
  },
);

t.test(
  'hex digits decoded from lower-case escapes also complete a double-encoded escape',
  async (t) => {
    // %61 is a, %62 is b: both hex digits once decoded.
    t.match(canonical('/x/%25%61%62'), /double-encoded/);
    t.match(canonical('/x/%25%41%62'), /double-encoded/, 'mixed case');
    t.match(
      canonical('/x/%25%65%2E'),
      /^\/x\/%25e\.$/,
      'one hex digit then a dot is not an escape',
    );
  },
);

t.test(
  'a %25 followed by one decoded and one raw hex digit is rejected, in either order',
  async (t) => {
    t.match(canonical('/x/%25%32F'), /double-encoded/);
    t.match(canonical('/x/%252%46'), /double-encoded/);
    t.match(canonical('/x/%25%32f'), /double-encoded/, 'raw lower-case hex');
  },
);

t.test('a double-encoded escape is rejected whether or not dot segments remove it', async (t) => {
  t.match(canonical('/%25%34%31/../x'), /double-encoded/, 'as the raw /%2541/../x is');
  t.match(canonical('/a/%2e%2e/%25%32%46'), /double-encoded/);
  // Segments are joined by /, so removing one never brings %25 next to hex digits.
  t.equal(canonical('/a%25/../41'), '/41');
  t.equal(canonical('/a%25/%2e%2e/%34%31'), '/41');
});

t.test('%25%25 is not an escape; %25%25 followed by hex digits is', async (t) => {
  t.equal(canonical('/%25%25'), '/%25%25');
  t.match(canonical('/%25%25%34%31'), /double-encoded/, 'the second %25 and 41 decode again');
  t.match(canonical('/%25%2541'), /double-encoded/);
});

t.test(
  'a legitimate %25 followed by something other than two hex digits still works',
  async (t) => {
    t.equal(canonical('/100%25'), '/100%25');
    t.equal(canonical('/100%25off'), '/100%25off', 'o is not a hex digit');
    t.equal(canonical('/%25%7A%7A'), '/%25zz');
    t.equal(canonical('/%25a/b'), '/%25a/b', 'one hex digit before a /');
    t.equal(canonical('/%25%20'), '/%25%20');
    t.equal(canonical('/x?q=%25%34%31'), '/x?q=%25%34%31', 'the query is forwarded as received');
  },
);

// A small deterministic generator (fast-check is not a dependency): pieces
// chosen to collide, so %25 meets decoded and raw hex digits, dot segments and
// slashes often. A failure names the seed's input.
const PIECES = [
  ...['%25', '%25', '%32', '%46', '%34', '%31', '%61', '%62', '%65', '%41', '%2E', '%2e'],
  ...['%7A', '%20', '%3B', '%3A', '%C3%A9', '%zz', '/', '/', '.', '..', 'a', 'F', '4', '1', 'z'],
];

function randomPaths(count: number, seed: number): string[] {
  let state = seed;
  const next = () => {
    // mulberry32
    state = (state + 0x6d2b79f5) | 0;
    let x = Math.imul(state ^ (state >>> 15), state | 1);
    x ^= x + Math.imul(x ^ (x >>> 7), x | 61);
    return ((x ^ (x >>> 14)) >>> 0) / 4294967296;
  };
  const paths: string[] = [];
  for (let i = 0; i < count; i++) {
    let path = '/';
    const length = 1 + Math.floor(next() * 10);
    for (let p = 0; p < length; p++) path += PIECES[Math.floor(next() * PIECES.length)];
    paths.push(path);
  }
  return paths;
}

t.test(
  'for any path it accepts, the output is a fixed point and never holds %25 followed by two hex digits',
  async (t) => {
    let accepted = 0;
    const failures: string[] = [];
    for (const raw of randomPaths(5000, 0x5eed)) {
      const first = canonicalTarget(raw);
      if (!first.ok) continue;
      accepted++;
      const out = first.target.path;
      if (/%25[0-9a-f]{2}/i.test(out)) failures.push(`${raw} gave ${out}, which decodes twice`);
      if (canonical(out) !== out) {
        failures.push(`${raw} gave ${out}, which canonicalises to ${canonical(out)}`);
      }
      // Decoding once leaves an escape only where the output spelled %25XX (never, above).
      if (/%[0-9a-f]{2}/i.test(decodeURIComponent(out))) {
        failures.push(`${raw} gave ${out}, which still holds an escape once decoded`);
      }
    }
    t.same(failures.slice(0, 5), [], `${failures.length} failures`);
    t.ok(accepted > 500, `enough inputs were accepted to mean something (${accepted})`);
  },
);
