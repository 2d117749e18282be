import t from 'tap';
import { parse } from 'yaml';
import type { HttpRoute } from '../../common/policy/httproute-schema.ts';
import { HttpRouteTable, type RouteRequest } from './http-route-table.ts';

const GATEWAY = { name: 'edge', namespace: 'shop' };

function route(name: string, spec: string, created = '2026-11-01T00:00:00Z'): HttpRoute {
  return {
    apiVersion: 'gateway.networking.k8s.io/v1',
    kind: 'HTTPRoute',
    metadata: { name, namespace: 'shop', creationTimestamp: created },
    spec: { parentRefs: [{ name: 'edge' }], ...parse(spec) },
  } as HttpRoute;
}

function request(
  path: string,
  options: {
    host?: string;
    method?: string;
    headers?: Record<string, string>;
    query?: Record<string, string>;
  } = {},
): RouteRequest {
  return {
    host: options.host ?? 'shop.example.com',
    method: options.method ?? 'GET',
    path,
    header: (name) => options.headers?.[name],
    query: (name) => options.query?.[name],
  };
}

/** `route/rule` of the match that takes the request, or 404. */
const taken = (table: HttpRouteTable, req: RouteRequest) => {
  const match = table.match(req);
  return match ? `${match.route.split('/')[1]}/${match.ruleIndex}` : '404';
};

t.test(
  'an exact path beats a prefix, and a longer prefix a shorter, whatever the order',
  async (t) => {
    const table = new HttpRouteTable(
      [
        route(
          'a',
          `rules:
  - matches: [{ path: { type: PathPrefix, value: / } }]
  - matches: [{ path: { type: PathPrefix, value: /api } }]
  - matches: [{ path: { type: Exact, value: /api/orders } }]
  - matches: [{ path: { type: PathPrefix, value: /api/orders } }]`,
        ),
      ],
      GATEWAY,
    );
    t.equal(taken(table, request('/api/orders')), 'a/2');
    t.equal(taken(table, request('/api/orders/7')), 'a/3');
    t.equal(taken(table, request('/api/other')), 'a/1');
    t.equal(taken(table, request('/apix')), 'a/0', 'a prefix matches whole segments');
    t.equal(taken(table, request('/')), 'a/0');
  },
);

t.test('then a method, then more headers, then more query parameters', async (t) => {
  const table = new HttpRouteTable(
    [
      route(
        'a',
        `rules:
  - matches: [{ path: { value: /x } }]
  - matches: [{ path: { value: /x }, headers: [{ name: x-a, value: "1" }] }]
  - matches: [{ path: { value: /x }, headers: [{ name: x-a, value: "1" }, { name: x-b, value: "1" }] }]
  - matches: [{ path: { value: /x }, queryParams: [{ name: v, value: "2" }] }]
  - matches: [{ path: { value: /x }, method: POST }]`,
      ),
    ],
    GATEWAY,
  );
  t.equal(
    taken(table, request('/x', { method: 'POST', headers: { 'x-a': '1', 'x-b': '1' } })),
    'a/4',
  );
  t.equal(taken(table, request('/x', { headers: { 'x-a': '1', 'x-b': '1' } })), 'a/2');
  t.equal(taken(table, request('/x', { headers: { 'x-a': '1' }, query: { v: '2' } })), 'a/1');
  t.equal(taken(table, request('/x', { query: { v: '2' } })), 'a/3');
  t.equal(taken(table, request('/x')), 'a/0');
});

t.test(
  'ties go to the older route, then to namespace/name, then to the earlier rule',
  async (t) => {
    const same = `rules:\n  - matches: [{ path: { value: /x } }]\n  - matches: [{ path: { value: /x } }]`;
    const older = new HttpRouteTable(
      [route('b', same, '2026-11-02T00:00:00Z'), route('z', same, '2026-11-01T00:00:00Z')],
      GATEWAY,
    );
    t.equal(taken(older, request('/x')), 'z/0', 'the older route');
    const byName = new HttpRouteTable([route('b', same), route('a', same)], GATEWAY);
    t.equal(taken(byName, request('/x')), 'a/0', 'then by name, then the first rule');
  },
);

t.test('exact hosts, then the longest wildcard, then routes without hostnames', async (t) => {
  const table = new HttpRouteTable(
    [
      route('any', 'rules: [{ matches: [{ path: { value: / } }] }]'),
      route('wide', 'hostnames: ["*.example.com"]\nrules: [{ matches: [{ path: { value: / } }] }]'),
      route(
        'narrow',
        'hostnames: ["*.shop.example.com"]\nrules: [{ matches: [{ path: { value: / } }] }]',
      ),
      route(
        'exact',
        'hostnames: [api.shop.example.com]\nrules: [{ matches: [{ path: { value: /only } }] }]',
      ),
    ],
    GATEWAY,
  );
  t.equal(taken(table, request('/only', { host: 'api.shop.example.com' })), 'exact/0');
  t.equal(
    taken(table, request('/other', { host: 'api.shop.example.com' })),
    'narrow/0',
    'a wildcard route also applies to a host named exactly elsewhere, after it',
  );
  t.equal(
    taken(table, request('/', { host: 'a.b.shop.example.com' })),
    'narrow/0',
    'a wildcard spans labels',
  );
  t.equal(taken(table, request('/', { host: 'www.example.com' })), 'wide/0');
  t.equal(taken(table, request('/', { host: 'example.com' })), 'any/0', 'not the bare domain');
  t.equal(taken(table, request('/', { host: 'Other.Test' })), 'any/0');
});

t.test(
  'routes that do not name this gateway are not compiled; nothing matching is a 404',
  async (t) => {
    const other = route('other', 'rules: [{ matches: [{ path: { value: / } }] }]');
    (other.spec.parentRefs as { name: string }[])[0]!.name = 'another-gateway';
    const table = new HttpRouteTable(
      [
        other,
        route(
          'api',
          'rules: [{ matches: [{ path: { value: /api } }], backendRefs: [{ name: orders, weight: 3 }] }]',
        ),
      ],
      GATEWAY,
    );
    t.equal(taken(table, request('/')), '404');
    t.match(table.match(request('/api')), {
      route: 'shop/api',
      backends: [{ service: 'orders', namespace: 'shop', weight: 3 }],
    });
  },
);

t.test(
  'regression: a PathPrefix with a trailing slash matched only below it, not the path itself',
  async (t) => {
    const table = new HttpRouteTable([
      {
        apiVersion: 'gateway.networking.k8s.io/v1',
        kind: 'HTTPRoute',
        metadata: { name: 'r', namespace: 'shop' },
        spec: {
          parentRefs: [{ name: 'edge' }],
          rules: [
            {
              matches: [{ path: { type: 'PathPrefix', value: '/abc/' } }],
              backendRefs: [{ name: 'orders' }],
            },
          ],
        },
      },
    ]);
    const at = (path: string) =>
      table.match({
        host: 'x',
        method: 'GET',
        path,
        header: () => undefined,
        query: () => undefined,
      });
    t.ok(at('/abc'), 'the trailing slash is ignored (Gateway API)');
    t.ok(at('/abc/d'));
    t.notOk(at('/abcd'));
  },
);
