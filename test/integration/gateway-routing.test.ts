import t from 'tap';
import { startEdge } from './gateway-edge.ts';

const ROUTES = `
apiVersion: gateway.networking.k8s.io/v1
kind: HTTPRoute
metadata: { name: shop, namespace: shop, creationTimestamp: "2026-01-01T00:00:00Z" }
spec:
  parentRefs: [{ name: edge }]
  hostnames: [shop.example.com]
  rules:
    - matches: [{ path: { type: PathPrefix, value: /orders } }]
      filters:
        - type: RequestHeaderModifier
          requestHeaderModifier:
            set: [{ name: x-route, value: orders }]
            add: [{ name: x-added, value: by-gateway }]
            remove: [x-internal]
        - type: ResponseHeaderModifier
          responseHeaderModifier:
            add: [{ name: x-served-by, value: gateway }]
            remove: [x-app]
      backendRefs: [{ name: orders, port: 80 }]
    - matches: [{ path: { type: Exact, value: /orders/special } }]
      backendRefs: [{ name: catalog, port: 80 }]
    - matches:
        - { path: { type: PathPrefix, value: /orders }, headers: [{ name: x-version, value: beta }] }
        - { path: { type: PathPrefix, value: /orders }, queryParams: [{ name: beta, value: "1" }] }
      backendRefs: [{ name: catalog, port: 80 }]
    - matches: [{ path: { type: PathPrefix, value: /orders }, method: DELETE }]
      backendRefs: [{ name: catalog, port: 80 }]
    - matches: [{ path: { type: PathPrefix, value: /v1/orders } }]
      filters:
        - type: URLRewrite
          urlRewrite: { hostname: orders.internal, path: { type: ReplacePrefixMatch, replacePrefixMatch: /orders } }
      backendRefs: [{ name: orders, port: 80 }]
    - matches: [{ path: { type: PathPrefix, value: /status } }]
      filters:
        - type: URLRewrite
          urlRewrite: { path: { type: ReplaceFullPath, replaceFullPath: /healthz } }
      backendRefs: [{ name: orders, port: 80 }]
    - matches: [{ path: { type: Exact, value: /old } }]
      filters:
        - type: RequestRedirect
          requestRedirect: { path: { type: ReplaceFullPath, replaceFullPath: /orders }, statusCode: 301 }
    - matches: [{ path: { type: PathPrefix, value: /shop } }]
      filters:
        - type: RequestRedirect
          requestRedirect: { hostname: api.example.com, port: 443 }
---
apiVersion: gateway.networking.k8s.io/v1
kind: HTTPRoute
metadata: { name: wildcard, namespace: shop, creationTimestamp: "2026-01-02T00:00:00Z" }
spec:
  parentRefs: [{ name: edge }]
  hostnames: ["*.shop.example.com"]
  rules:
    - backendRefs: [{ name: catalog, port: 80 }]
---
apiVersion: gateway.networking.k8s.io/v1
kind: HTTPRoute
metadata: { name: eu, namespace: shop, creationTimestamp: "2026-01-03T00:00:00Z" }
spec:
  parentRefs: [{ name: edge }]
  hostnames: [eu.shop.example.com]
  rules:
    - backendRefs: [{ name: orders, port: 80 }]
---
apiVersion: gateway.networking.k8s.io/v1
kind: HTTPRoute
metadata: { name: split, namespace: shop }
spec:
  parentRefs: [{ name: edge }]
  hostnames: [api.example.com]
  rules:
    - backendRefs: [{ name: orders, port: 80, weight: 90 }, { name: catalog, port: 80, weight: 10 }]
`;

t.test('postern gateway routes outside clients by HTTPRoute', async (t) => {
  const edge = await startEdge(t, { services: ['orders', 'catalog'], httpRoutes: ROUTES });
  const served = () => ({
    orders: edge.apps.orders!.requests.length,
    catalog: edge.apps.catalog!.requests.length,
  });
  /** Which backend took the request. */
  const whoServes = async (
    host: string,
    path: string,
    options: Parameters<typeof edge.call>[2] = {},
  ) => {
    const before = served();
    const response = await edge.call(host, path, options);
    t.equal(response.status, 200, `${options.method ?? 'GET'} ${host}${path} answered`);
    const after = served();
    return after.orders > before.orders
      ? 'orders'
      : after.catalog > before.catalog
        ? 'catalog'
        : 'none';
  };

  t.test(
    'precedence: exact over prefix, then method, headers and query over a bare path',
    async (t) => {
      t.equal(await whoServes('shop.example.com', '/orders/1'), 'orders');
      t.equal(
        await whoServes('shop.example.com', '/orders/special'),
        'catalog',
        'an Exact path wins',
      );
      t.equal(
        await whoServes('shop.example.com', '/orders/1', { headers: { 'x-version': 'beta' } }),
        'catalog',
        'a header match beats the same path without one',
      );
      t.equal(
        await whoServes('shop.example.com', '/orders/1?beta=1'),
        'catalog',
        'so does a query match',
      );
      t.equal(
        await whoServes('shop.example.com', '/orders/1?beta=2'),
        'orders',
        'with the value it names',
      );
      t.equal(
        await whoServes('shop.example.com', '/orders/1', { method: 'DELETE' }),
        'catalog',
        'and a method match',
      );
      t.equal(
        (await edge.call('shop.example.com', '/ordersx')).status,
        404,
        'a prefix matches whole segments',
      );
    },
  );

  t.test(
    'regression: a Host that is not a host name matched wildcards and landed in redirects',
    async (t) => {
      for (const host of [
        'evil.com/#.shop.example.com',
        'a b.shop.example.com',
        'shop.example.com:port',
      ]) {
        const response = await edge.call(host, '/old');
        t.equal(response.status, 400, host);
        t.match(JSON.parse(response.body), { error: { code: 'POSTERN_BAD_HOST' } });
      }
      t.equal(
        (await edge.call('shop.example.com.', '/orders/1')).status,
        200,
        'a trailing dot is a host',
      );
    },
  );

  t.test('an unmatched host or path gets 404 with a JSON body', async (t) => {
    for (const [host, path] of [
      ['shop.example.com', '/nothing-here'],
      ['unknown.example.org', '/orders'],
    ] as const) {
      const response = await edge.call(host, path);
      t.equal(response.status, 404);
      t.match(response.headers['content-type'], /application\/json/);
      t.match(JSON.parse(response.body), {
        error: { code: 'POSTERN_NO_ROUTE', host: host, path },
      });
    }
  });

  t.test(
    'wildcard hostnames take hosts under them; an exact hostname wins over the wildcard',
    async (t) => {
      t.equal(await whoServes('a.shop.example.com', '/anything'), 'catalog');
      t.equal(await whoServes('deep.a.shop.example.com', '/anything'), 'catalog');
      t.equal(await whoServes('eu.shop.example.com', '/anything'), 'orders', 'the exact host');
      t.equal(
        await whoServes('EU.Shop.Example.com:8443', '/anything'),
        'orders',
        'host compared without case or port',
      );
    },
  );

  t.test('header modifiers change what the backend and the client see', async (t) => {
    const response = await edge.call('shop.example.com', '/orders/7', {
      headers: { 'x-route': 'client-said', 'x-internal': 'secret' },
    });
    const seen = edge.lastSeen('orders');
    t.equal(seen.headers['x-route'], 'orders', 'set replaces the client value');
    t.equal(seen.headers['x-added'], 'by-gateway');
    t.notOk('x-internal' in seen.headers, 'remove removes');
    t.equal(response.headers['x-served-by'], 'gateway', 'response header added');
    t.notOk('x-app' in response.headers, "the app's header removed");
  });

  t.test('URLRewrite: prefix and full path, and hostname', async (t) => {
    await edge.call('shop.example.com', '/v1/orders/42?x=1');
    t.equal(edge.lastSeen('orders').url, '/orders/42?x=1', 'the matched prefix replaced');
    t.equal(edge.lastSeen('orders').headers.host, 'orders.internal', 'the Host rewritten');
    t.equal(
      edge.lastSeen('orders').headers['x-forwarded-host'],
      'shop.example.com',
      'the host the client asked for, in X-Forwarded-Host',
    );
    await edge.call('shop.example.com', '/status/anything');
    t.equal(edge.lastSeen('orders').url, '/healthz', 'the full path replaced');
  });

  t.test('RequestRedirect answers at the gateway with Location', async (t) => {
    const before = served();
    const moved = await edge.call('shop.example.com', '/old?q=1');
    t.equal(moved.status, 301);
    t.equal(moved.headers.location, `https://shop.example.com:${edge.port}/orders?q=1`);
    const host = await edge.call('shop.example.com', '/shop/cart');
    t.equal(host.status, 302, 'the default code');
    t.equal(host.headers.location, 'https://api.example.com/shop/cart', 'port 443 is left out');
    t.same(served(), before, 'no backend was called');
  });

  t.test('weights: a 90/10 split over 1,000 requests', async (t) => {
    const before = served();
    const batch = 25;
    for (let i = 0; i < 1000; i += batch) {
      const results = await Promise.all(
        Array.from({ length: batch }, () => edge.call('api.example.com', '/split')),
      );
      if (results.some((r) => r.status !== 200)) t.fail('a split request failed');
    }
    const catalog = served().catalog - before.catalog;
    const orders = served().orders - before.orders;
    t.equal(orders + catalog, 1000);
    // Binomial(1000, 0.1): standard deviation 9.5 requests; 40 is over 4 of them.
    t.ok(Math.abs(catalog - 100) <= 40, `catalog took ${catalog} of 1000 (100 ± 40)`);
    t.comment(`split: orders ${orders}, catalog ${catalog}`);
  });
});
