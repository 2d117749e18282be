import t from 'tap';
import type { RoutePolicy } from '../../common/policy/schema.ts';
import type { MeshDefault } from '../../common/wire.ts';
import { authorize, boundToCertificate, claimsMatch, type RequestFacts } from './authorize.ts';
import { compilePolicies, NO_ROUTE } from './compiled-policy.ts';

const FRONTEND = 'spiffe://cluster.local/ns/shop/sa/frontend';
const ONCALL = 'spiffe://cluster.local/ns/ops/sa/oncall';
const NOW = Date.parse('2026-11-25T12:00:00Z');

function policy(spec: Partial<RoutePolicy['spec']>, name = 'orders-api'): RoutePolicy {
  return {
    apiVersion: 'postern.dev/v1alpha1',
    kind: 'RoutePolicy',
    metadata: { name, namespace: 'shop' },
    spec: { routes: [], ...spec },
  };
}

function compiled(policies: RoutePolicy[], meshDefault: MeshDefault = 'deny') {
  return compilePolicies({ version: '1.1', meshDefault, policies });
}

// null: an unauthenticated caller (undefined would take the default).
const facts = (
  method: string,
  path: string,
  principal: string | null = FRONTEND,
): RequestFacts => ({ method, path, principal: principal ?? undefined });

const ORDERS = compiled([
  policy({
    routes: [
      {
        name: 'list-orders',
        match: { methods: ['GET'], path: { prefix: '/orders' } },
        allow: [{ principals: [FRONTEND] }],
      },
      {
        name: 'get-order',
        match: { methods: ['GET'], path: { template: '/orders/{id}' } },
        allow: [{ principals: ['spiffe://cluster.local/ns/shop/*'] }],
      },
      {
        name: 'export',
        match: { path: { exact: '/orders/export' } },
        allow: [{ principals: [ONCALL], expiresAt: '2026-11-25T13:00:00Z' }],
      },
      {
        name: 'admin',
        match: { path: { prefix: '/admin' } },
        deny: [{ principals: ['*'] }],
        allow: [{ principals: [FRONTEND] }],
      },
      { name: 'open', match: { path: { prefix: '/public' } } },
    ],
  }),
]);

t.test(
  'a request matching an allow entry of its route is allowed, naming route and entry',
  async (t) => {
    t.match(authorize(ORDERS, facts('GET', '/orders'), NOW), {
      allowed: true,
      reason: 'allow-rule-matched',
      policy: 'shop/orders-api',
      route: 'list-orders',
      rule: 'allow[0]',
    });
  },
);

t.test('a route with allow entries denies a caller none of them match', async (t) => {
  t.match(authorize(ORDERS, facts('GET', '/orders', ONCALL), NOW), {
    allowed: false,
    reason: 'no-allow-rule-matched',
    route: 'list-orders',
  });
});

t.test('an explicit deny wins over a matching allow', async (t) => {
  t.match(authorize(ORDERS, facts('GET', '/admin/users'), NOW), {
    allowed: false,
    reason: 'deny-rule-matched',
    route: 'admin',
    rule: 'deny[0]',
  });
});

t.test('an exact path beats a template, and a template beats a prefix', async (t) => {
  t.match(authorize(ORDERS, facts('GET', '/orders/export', ONCALL), NOW), {
    route: 'export',
    allowed: true,
  });
  t.match(
    authorize(ORDERS, facts('GET', '/orders/7', 'spiffe://cluster.local/ns/shop/sa/billing'), NOW),
    { route: 'get-order', allowed: true },
  );
  t.match(authorize(ORDERS, facts('GET', '/orders/7/items'), NOW), { route: 'list-orders' });
});

t.test('a namespace wildcard matches every service account of that namespace only', async (t) => {
  t.match(
    authorize(ORDERS, facts('GET', '/orders/7', 'spiffe://cluster.local/ns/shop/sa/anyone'), NOW),
    { allowed: true },
  );
  t.match(
    authorize(
      ORDERS,
      facts('GET', '/orders/7', 'spiffe://cluster.local/ns/shopping/sa/anyone'),
      NOW,
    ),
    { allowed: false },
  );
});

t.test('prefixes match whole path segments', async (t) => {
  t.match(authorize(ORDERS, facts('GET', '/ordersx'), NOW), { reason: 'no-route-default-deny' });
  t.match(authorize(ORDERS, facts('GET', '/orders/'), NOW), { route: 'list-orders' });
});

t.test(
  'a method the route does not list falls through to other routes, then the default',
  async (t) => {
    const layered = compiled([
      policy({
        routes: [
          {
            name: 'read',
            match: { methods: ['GET'], path: { exact: '/orders' } },
            allow: [{ principals: ['*'] }],
          },
          {
            name: 'items',
            match: { path: { template: '/{any}' } },
            allow: [{ principals: [ONCALL] }],
          },
        ],
      }),
    ]);
    t.match(authorize(layered, facts('GET', '/orders'), NOW), { route: 'read', allowed: true });
    t.match(
      authorize(layered, facts('DELETE', '/orders'), NOW),
      { route: 'items', allowed: false },
      'to the next route that matches',
    );
    t.match(authorize(ORDERS, facts('DELETE', '/orders'), NOW), {
      allowed: false,
      reason: 'no-route-default-deny',
      policy: 'shop/orders-api',
    });
  },
);

t.test(
  'a just-in-time grant stops matching at its expiry instant without a new snapshot',
  async (t) => {
    const expiry = Date.parse('2026-11-25T13:00:00Z');
    t.match(authorize(ORDERS, facts('GET', '/orders/export', ONCALL), expiry - 1), {
      allowed: true,
    });
    t.match(authorize(ORDERS, facts('GET', '/orders/export', ONCALL), expiry), {
      allowed: false,
      reason: 'no-allow-rule-matched',
    });
  },
);

t.test('a route with no allow entries takes the default action', async (t) => {
  t.match(authorize(ORDERS, facts('GET', '/public/logo.png'), NOW), {
    allowed: false,
    reason: 'route-default-deny',
    route: 'open',
  });
  const open = compiled([
    policy({
      defaultAction: 'allow',
      routes: [{ name: 'open', match: { path: { prefix: '/public' } } }],
    }),
  ]);
  t.match(authorize(open, facts('GET', '/public/logo.png'), NOW), {
    allowed: true,
    reason: 'route-default-allow',
  });
  t.match(authorize(open, facts('GET', '/elsewhere'), NOW), {
    allowed: true,
    reason: 'no-route-default-allow',
  });
});

t.test(
  'when several policies select a workload, the strictest default applies to unmatched requests',
  async (t) => {
    const both = compiled([
      policy({ defaultAction: 'allow' }, 'lenient'),
      policy({ defaultAction: 'deny' }, 'strict'),
    ]);
    t.match(authorize(both, facts('GET', '/x'), NOW), { allowed: false, policy: 'shop/strict' });
  },
);

t.test(
  'an allow entry with claims admits a verified token holding them, and asks a caller without one for a token',
  async (t) => {
    const jwt = compiled([
      policy({ routes: [{ name: 'r', allow: [{ jwt: { claims: { scope: 'orders.read' } } }] }] }),
    ]);
    const withClaims = (claims?: Record<string, unknown>) => ({
      ...facts('GET', '/orders'),
      claims,
    });
    t.match(authorize(jwt, withClaims({ scope: 'profile orders.read' }), NOW), {
      allowed: true,
      rule: 'allow[0]',
    });
    t.match(authorize(jwt, withClaims({ scope: 'orders.write' }), NOW), {
      allowed: false,
      reason: 'no-allow-rule-matched',
    });
    t.match(authorize(jwt, withClaims(undefined), NOW), {
      allowed: false,
      reason: 'no-allow-rule-matched',
      tokenRequired: true,
    });
    const plain = compiled([
      policy({ routes: [{ name: 'r', allow: [{ principals: [ONCALL] }] }] }),
    ]);
    t.notOk(authorize(plain, facts('GET', '/orders'), NOW).tokenRequired, 'no claims asked: a 403');
  },
);

t.test(
  'a deny entry with claims applies to tokens holding them, and not without a token',
  async (t) => {
    const jwt = compiled([
      policy({
        routes: [
          {
            name: 'r',
            deny: [{ principals: ['*'], jwt: { claims: { role: 'guest' } } }],
            allow: [{ principals: [FRONTEND] }],
          },
        ],
      }),
    ]);
    t.match(
      authorize(jwt, { ...facts('GET', '/orders'), claims: { role: ['user', 'guest'] } }, NOW),
      {
        allowed: false,
        reason: 'deny-rule-matched',
        rule: 'deny[0]',
      },
    );
    t.match(authorize(jwt, { ...facts('GET', '/orders'), claims: { role: 'admin' } }, NOW), {
      allowed: true,
    });
    t.match(authorize(jwt, facts('GET', '/orders'), NOW), { allowed: true });
  },
);

t.test(
  'claims match by value: strings whole or space-separated, arrays by member, numbers and booleans as text',
  (t) => {
    t.ok(claimsMatch({ scope: 'a' }, { scope: 'a b' }));
    t.notOk(claimsMatch({ scope: 'a' }, { scope: 'ab' }), 'no substring matches');
    t.ok(claimsMatch({ groups: 'ops' }, { groups: ['dev', 'ops'] }));
    t.ok(claimsMatch({ level: '3', admin: 'true' }, { level: 3, admin: true }));
    t.notOk(claimsMatch({ org: 'x' }, { org: { id: 'x' } }), 'an object claim never matches');
    t.notOk(
      claimsMatch({ scope: 'a', org: 'x' }, { scope: 'a' }),
      'every required claim must hold',
    );
    t.notOk(claimsMatch({ scope: 'a' }, undefined));
    t.end();
  },
);

t.test('"*" needs an authenticated principal', async (t) => {
  const any = compiled([policy({ routes: [{ name: 'r', allow: [{ principals: ['*'] }] }] })]);
  t.match(authorize(any, facts('GET', '/x', null), NOW), { allowed: false });
  t.match(authorize(any, facts('GET', '/x'), NOW), { allowed: true });
});

t.test('audit mode reports the denial it would make and marks the decision as audit', async (t) => {
  const audit = compiled([
    policy({ mode: 'audit', routes: [{ name: 'r', allow: [{ principals: [ONCALL] }] }] }),
  ]);
  t.match(authorize(audit, facts('GET', '/x'), NOW), {
    allowed: false,
    mode: 'audit',
    reason: 'no-allow-rule-matched',
  });
});

t.test('a workload no policy selects gets the mesh default', async (t) => {
  t.match(authorize(compiled([], 'deny'), facts('GET', '/x'), NOW), {
    allowed: false,
    reason: 'mesh-default-deny',
  });
  t.match(authorize(compiled([], 'allow-authenticated'), facts('GET', '/x'), NOW), {
    allowed: true,
    reason: 'mesh-default-allow-authenticated',
  });
  t.match(authorize(compiled([], 'allow-authenticated'), facts('GET', '/x', null), NOW), {
    allowed: false,
    reason: 'unauthenticated',
  });
});

t.test('without a snapshot every request is denied', async (t) => {
  t.match(authorize(undefined, facts('GET', '/x'), NOW), { allowed: false, reason: 'no-snapshot' });
});

t.test('a template parameter matches exactly one non-empty segment', async (t) => {
  const tpl = compiled([
    policy({
      routes: [
        { name: 'item', match: { path: { template: '/a/{x}/b' } }, allow: [{ principals: ['*'] }] },
      ],
    }),
  ]);
  t.match(authorize(tpl, facts('GET', '/a/1/b'), NOW), { route: 'item' });
  t.match(authorize(tpl, facts('GET', '/a//b'), NOW), { reason: 'no-route-default-deny' });
  t.match(authorize(tpl, facts('GET', '/a/1/2/b'), NOW), { reason: 'no-route-default-deny' });
  t.match(authorize(tpl, facts('GET', '/a/1/b/c'), NOW), { reason: 'no-route-default-deny' });
});

t.test(
  'header matches choose between routes on the same path, the route with more matches first',
  async (t) => {
    const byTenant = compiled([
      policy({
        routes: [
          {
            name: 'any-tenant',
            match: { path: { prefix: '/orders' } },
            allow: [{ principals: ['*'] }],
          },
          {
            name: 'tenant-a',
            match: { path: { prefix: '/orders' }, headers: [{ name: 'X-Tenant', exact: 'a' }] },
            deny: [{ principals: ['*'] }],
          },
          {
            name: 'no-debug',
            match: {
              path: { prefix: '/orders' },
              headers: [
                { name: 'x-debug', present: false },
                { name: 'x-tenant', prefix: 'b' },
              ],
            },
            allow: [{ principals: ['*'] }],
          },
        ],
      }),
    ]);
    const withHeaders = (headers: Record<string, string>) => ({
      ...facts('GET', '/orders'),
      headers,
    });
    t.match(authorize(byTenant, withHeaders({ 'x-tenant': 'a' }), NOW), {
      route: 'tenant-a',
      allowed: false,
    });
    t.match(authorize(byTenant, withHeaders({ 'x-tenant': 'blue' }), NOW), {
      route: 'no-debug',
      allowed: true,
    });
    t.match(authorize(byTenant, withHeaders({ 'x-tenant': 'blue', 'x-debug': '1' }), NOW), {
      route: 'any-tenant',
    });
    t.match(authorize(byTenant, withHeaders({}), NOW), { route: 'any-tenant' });
  },
);

t.test('source IP ranges restrict an entry to peers connecting from them', async (t) => {
  const ranged = compiled([
    policy({
      routes: [
        { name: 'r', allow: [{ principals: ['*'], sourceIPs: ['10.0.0.0/8', 'fd00::/8'] }] },
      ],
    }),
  ]);
  const from = (sourceAddress: string | undefined) => ({
    ...facts('GET', '/x'),
    ...(sourceAddress ? { sourceAddress } : {}),
  });
  t.match(authorize(ranged, from('10.1.2.3'), NOW), { allowed: true });
  t.match(authorize(ranged, from('fd00::1'), NOW), { allowed: true });
  t.match(authorize(ranged, from('192.168.1.1'), NOW), { allowed: false });
  t.match(
    authorize(ranged, from(undefined), NOW),
    { allowed: false },
    'an unknown address matches no range',
  );
});

t.test('a trust-domain wildcard matches every identity of that trust domain only', async (t) => {
  const domain = compiled([
    policy({ routes: [{ name: 'r', allow: [{ principals: ['spiffe://cluster.local/*'] }] }] }),
  ]);
  t.match(authorize(domain, facts('GET', '/x', 'spiffe://cluster.local/ns/any/sa/one'), NOW), {
    allowed: true,
  });
  t.match(authorize(domain, facts('GET', '/x', 'spiffe://other.example/ns/any/sa/one'), NOW), {
    allowed: false,
  });
});

const ADMIN_BY_METHOD = compiled([
  policy({
    routes: [
      {
        name: 'admin-get',
        match: { methods: ['GET'], path: { prefix: '/admin' } },
        deny: [{ principals: ['*'] }],
      },
      {
        name: 'reports-read',
        match: { methods: ['GET'], path: { prefix: '/reports' } },
        allow: [{ principals: [FRONTEND] }],
      },
      {
        name: 'probe',
        match: { methods: ['HEAD'], path: { exact: '/health' } },
        allow: [{ principals: ['*'] }],
      },
      { name: 'everything', allow: [{ principals: ['*'] }] },
    ],
  }),
]);

t.test(
  'HEAD passed a deny route restricted to GET (the app runs its GET handler for HEAD); it is denied',
  async (t) => {
    t.match(authorize(ADMIN_BY_METHOD, facts('HEAD', '/admin/users'), NOW), {
      allowed: false,
      reason: 'deny-rule-matched',
      route: 'admin-get',
    });
  },
);

t.test('HEAD on a route that allows GET is allowed, as GET is', async (t) => {
  t.match(authorize(ADMIN_BY_METHOD, facts('HEAD', '/reports/q3'), NOW), {
    allowed: true,
    route: 'reports-read',
  });
  t.match(authorize(ADMIN_BY_METHOD, facts('HEAD', '/reports/q3', ONCALL), NOW), {
    allowed: false,
    reason: 'no-allow-rule-matched',
    route: 'reports-read',
  });
});

t.test('a route that lists HEAD alone still takes HEAD, and GET is not added to it', async (t) => {
  t.match(authorize(ADMIN_BY_METHOD, facts('HEAD', '/health'), NOW), {
    allowed: true,
    route: 'probe',
  });
  t.match(authorize(ADMIN_BY_METHOD, facts('GET', '/health'), NOW), { route: 'everything' });
});

t.test(
  'a method a GET-only deny route does not take (POST) goes to the broader route',
  async (t) => {
    t.match(authorize(ADMIN_BY_METHOD, facts('POST', '/admin/users'), NOW), {
      allowed: true,
      route: 'everything',
    });
    t.match(authorize(ADMIN_BY_METHOD, facts('OPTIONS', '/admin/users'), NOW), {
      route: 'everything',
    });
  },
);

t.test(
  'a certificate-bound entry admits only a token whose cnf.x5t#S256 is the caller certificate',
  (t) => {
    const bound = compiled([
      policy({
        routes: [
          {
            name: 'r',
            allow: [{ jwt: { claims: { scope: 'pay' }, certificateBound: true } }],
          },
        ],
      }),
    ]);
    const request = (cnf: unknown, thumbprint?: string) => ({
      ...facts('POST', '/pay'),
      claims: { scope: 'pay', ...(cnf === undefined ? {} : { cnf }) },
      ...(thumbprint ? { certificateThumbprint: thumbprint } : {}),
    });
    t.match(authorize(bound, request({ 'x5t#S256': 'abc' }, 'abc'), NOW), { allowed: true });
    t.match(authorize(bound, request({ 'x5t#S256': 'abc' }, 'xyz'), NOW), {
      allowed: false,
      bindingRequired: true,
    });
    t.match(authorize(bound, request(undefined, 'abc'), NOW), { allowed: false });
    t.match(
      authorize(bound, request({ 'x5t#S256': 'abc' }), NOW),
      { allowed: false },
      'no certificate',
    );
    t.notOk(boundToCertificate({ cnf: { 'x5t#S256': 5 } }, '5'), 'only a string thumbprint binds');
    t.end();
  },
);

t.test(
  'a policy-wide rate limit covers its routes without one, and what its allow default admits',
  async (t) => {
    const limited = compiled([
      policy({
        defaultAction: 'allow',
        rateLimit: { requests: 10, per: '1s' },
        routes: [
          {
            name: 'own',
            match: { path: { prefix: '/own' } },
            rateLimit: { requests: 1, per: '1m' },
          },
          { name: 'inherits', match: { path: { prefix: '/inherits' } } },
        ],
      }),
    ]);
    const limitOf = (path: string) => authorize(limited, facts('GET', path), NOW).rateLimit;
    t.match(limitOf('/own'), { route: 'own', requests: 1 });
    t.match(limitOf('/inherits'), { route: 'inherits', requests: 10 });
    t.match(limitOf('/elsewhere'), { route: NO_ROUTE, requests: 10, policy: 'shop/orders-api' });
    const denying = compiled([policy({ rateLimit: { requests: 10, per: '1s' }, routes: [] })]);
    t.equal(
      authorize(denying, facts('GET', '/x'), NOW).rateLimit,
      undefined,
      'nothing to limit in a denial',
    );
  },
);
