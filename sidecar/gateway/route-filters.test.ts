import t from 'tap';
import type { HttpRouteFilter } from '../../common/policy/httproute-schema.ts';
import type { CompiledMatch } from './http-route-table.ts';
import { modifiedPath, modifyHeaders, pickBackend, redirect, rewrite } from './route-filters.ts';

const match = (path: string, filters: HttpRouteFilter[] = []): CompiledMatch => ({
  route: 'shop/r',
  ruleIndex: 0,
  ruleName: undefined,
  exact: false,
  path,
  method: undefined,
  headers: [],
  query: [],
  filters,
  backends: [],
  cors: undefined,
  requestHeaders: undefined,
  forward: undefined,
  timeoutMs: undefined,
  maxRequestBytes: undefined,
});

/** A seeded PRNG, so the split is the same each run. */
function seeded(seed: number): () => number {
  let state = seed;
  return () => {
    state = (state * 1_103_515_245 + 12_345) % 2_147_483_648;
    return state / 2_147_483_648;
  };
}

t.test('a 90/10 split over 1,000 requests lands within 3 points of 90/10', async (t) => {
  const backends = [
    { service: 'orders', namespace: 'shop', port: 80, weight: 90 },
    { service: 'orders-canary', namespace: 'shop', port: 80, weight: 10 },
  ];
  const random = seeded(11);
  let canary = 0;
  for (let i = 0; i < 1000; i++)
    if (pickBackend(backends, random)?.service === 'orders-canary') canary++;
  t.ok(canary >= 70 && canary <= 130, `${canary} of 1,000 to the canary`);
  t.equal(
    pickBackend([{ ...backends[0]!, weight: 0 }]),
    undefined,
    'all weights 0: no backend (500)',
  );
  t.equal(pickBackend([]), undefined);
});

t.test(
  'ReplacePrefixMatch replaces the matched prefix as the Gateway API table says',
  async (t) => {
    const cases: [string, string, string, string][] = [
      ['/foo', '/foo/bar', '/xyz', '/xyz/bar'],
      ['/foo', '/foo/bar', '/xyz/', '/xyz/bar'],
      ['/foo/', '/foo/bar', '/xyz', '/xyz/bar'],
      ['/foo', '/foo', '/xyz', '/xyz'],
      ['/foo', '/foo/', '/xyz', '/xyz/'],
      ['/foo', '/foo', '/', '/'],
      ['/foo', '/foo/', '/', '/'],
      ['/foo', '/foo/bar', '/', '/bar'],
    ];
    for (const [prefix, path, replacement, expected] of cases) {
      t.equal(
        modifiedPath(
          match(prefix),
          { type: 'ReplacePrefixMatch', replacePrefixMatch: replacement },
          path,
        ),
        expected,
        `prefix ${prefix}, ${path} with ${replacement}`,
      );
    }
    t.equal(
      modifiedPath(match('/foo'), { type: 'ReplaceFullPath', replaceFullPath: '/all' }, '/foo/x'),
      '/all',
    );
  },
);

t.test(
  'URLRewrite changes the path and host the backend receives; without one both stay',
  async (t) => {
    const m = match('/api', [
      {
        type: 'URLRewrite',
        urlRewrite: {
          hostname: 'orders.shop',
          path: { type: 'ReplacePrefixMatch', replacePrefixMatch: '/v2' },
        },
      },
    ]);
    t.same(rewrite(m, '/api/orders', 'shop.example.com'), {
      path: '/v2/orders',
      host: 'orders.shop',
    });
    t.same(rewrite(match('/api'), '/api/orders', 'h'), { path: '/api/orders', host: 'h' });
  },
);

t.test(
  "RequestRedirect: 302 unless told, the request's parts where the filter says nothing",
  async (t) => {
    const request = {
      scheme: 'http' as const,
      host: 'shop.example.com',
      port: 8080,
      path: '/old/x',
      search: '?a=1',
    };
    const to = (requestRedirect: NonNullable<HttpRouteFilter['requestRedirect']>) =>
      redirect(match('/old', [{ type: 'RequestRedirect', requestRedirect }]), request);
    t.same(to({}), { status: 302, location: 'http://shop.example.com:8080/old/x?a=1' });
    t.same(
      to({ scheme: 'https', statusCode: 301 }),
      {
        status: 301,
        location: 'https://shop.example.com/old/x?a=1',
      },
      'a scheme change without a port goes to the default port',
    );
    t.same(
      to({
        hostname: 'new.example.com',
        port: 443,
        path: { type: 'ReplacePrefixMatch', replacePrefixMatch: '/new' },
      }),
      {
        status: 302,
        location: 'http://new.example.com:443/new/x?a=1',
      },
    );
    t.same(
      to({ scheme: 'http' }),
      { status: 302, location: 'http://shop.example.com/old/x?a=1' },
      "regression: a scheme named, even the request's own, goes to its well-known port, not the listener's",
    );
    t.equal(redirect(match('/old'), request), undefined, 'no RequestRedirect: no redirect');
  },
);

t.test('header modifiers remove, then set (every value of the name), then add', async (t) => {
  t.same(
    modifyHeaders(['Host', 'h', 'X-A', '1', 'x-a', '2', 'X-Debug', 'on', 'Accept', '*/*'], {
      remove: ['x-debug'],
      set: [{ name: 'x-a', value: 'set' }],
      add: [{ name: 'accept', value: 'application/json' }],
    }),
    ['Host', 'h', 'Accept', '*/*', 'x-a', 'set', 'accept', 'application/json'],
  );
});
