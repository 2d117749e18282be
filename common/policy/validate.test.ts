import { mkdtemp, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import t from 'tap';
import { parse } from 'yaml';
import { loadPolicies } from './files.ts';
import { validateRoutePolicy } from './validate.ts';

async function load(yaml: string, now = new Date('2026-11-25T00:00:00Z')) {
  const dir = await mkdtemp(join(tmpdir(), 'postern-policy-'));
  const file = join(dir, 'p.yaml');
  await writeFile(file, yaml);
  const result = await loadPolicies([dir], now);
  return { ...result, file };
}

const HEADER =
  'apiVersion: postern.dev/v1alpha1\nkind: RoutePolicy\nmetadata: { name: orders-api, namespace: shop }\n';

t.test('a valid policy loads, with the namespace defaulted as kubectl does', async (t) => {
  const { policies, errors } = await load(
    'apiVersion: postern.dev/v1alpha1\nkind: RoutePolicy\nmetadata: { name: p }\nspec:\n  routes:\n    - name: r\n      match: { path: { prefix: /orders } }\n      allow: [{ principals: ["*"] }]\n',
  );
  t.same(errors, []);
  t.equal(policies[0]?.metadata.namespace, 'default');
});

t.test(
  'every structural error is reported with file, resource, JSON path, expected and found',
  async (t) => {
    const { errors, file } = await load(
      `${HEADER}spec:\n  mode: block\n  routes:\n    - name: r\n      match: { methods: [GET, FETCH] }\n      rateLimit: { requests: 0, per: 1x }\n      bogus: 1\n`,
    );
    t.same(errors.sort(), [
      `${file}: RoutePolicy shop/orders-api: spec.mode: expected one of enforce, audit; found "block"`,
      `${file}: RoutePolicy shop/orders-api: spec.routes[0].bogus: is not a known field; expected one of name, match, allow, deny, rateLimit, exfiltration, maxRequestBytes`,
      `${file}: RoutePolicy shop/orders-api: spec.routes[0].match.methods[1]: expected one of GET, HEAD, POST, PUT, PATCH, DELETE, OPTIONS, CONNECT, TRACE; found "FETCH"`,
      `${file}: RoutePolicy shop/orders-api: spec.routes[0].rateLimit.per: expected a duration such as 100ms, 1s, 5m or 1h; found "1x"`,
      `${file}: RoutePolicy shop/orders-api: spec.routes[0].rateLimit.requests: expected a whole number of at least 1; found 0`,
    ]);
  },
);

t.test(
  'policy validate reported a bad method but not the route name another route repeated (all errors at once)',
  async (t) => {
    const { errors, file } = await load(
      `${HEADER}spec:\n  routes:\n    - name: r\n      match: { methods: [FETCH] }\n    - name: r\n`,
    );
    t.same(errors.sort(), [
      `${file}: RoutePolicy shop/orders-api: spec.routes[0].match.methods[0]: expected one of GET, HEAD, POST, PUT, PATCH, DELETE, OPTIONS, CONNECT, TRACE; found "FETCH"`,
      `${file}: RoutePolicy shop/orders-api: spec.routes[1].name: duplicates the name of spec.routes[0] ("r")`,
    ]);
  },
);

t.test('a route’s maxRequestBytes is a size, and a bad one is named', async (t) => {
  const { errors } = await load(
    `${HEADER}spec:\n  routes:\n    - name: r\n      maxRequestBytes: 64Ki\n    - name: s\n      maxRequestBytes: lots\n`,
  );
  t.equal(errors.length, 1);
  t.match(errors[0], /spec\.routes\[1\]\.maxRequestBytes: .*"lots"/);
});

t.test('a missing required field says it is required', async (t) => {
  const { errors } = await load(`${HEADER}spec: {}\n`);
  t.match(errors, [/spec\.routes: is required$/]);
});

t.test(
  'semantic mistakes are errors: duplicate route names, bad principals, paths, templates, empty entries',
  async (t) => {
    const { errors } = await load(
      `${HEADER}spec:\n  routes:\n    - name: r\n      match: { path: { prefix: orders } }\n      allow: [{ principals: ["spiffe://cluster.local/ns"] }, {}]\n    - name: r\n      match: { path: { template: "/a/{id}/x{y}", exact: /a } }\n`,
    );
    t.match(errors.join('\n'), /spec\.routes\[1\]\.name: duplicates the name of spec\.routes\[0\]/);
    t.match(
      errors.join('\n'),
      /spec\.routes\[0\]\.match\.path\.prefix: expected a path starting with \/; found "orders"/,
    );
    t.match(
      errors.join('\n'),
      /spec\.routes\[0\]\.allow\[0\]\.principals\[0\]: expected "\*", spiffe:/,
    );
    t.match(
      errors.join('\n'),
      /spec\.routes\[0\]\.allow\[1\]: an entry needs at least one condition/,
    );
    t.match(
      errors.join('\n'),
      /spec\.routes\[1\]\.match\.path: expected exactly one of exact, prefix, template; found exact and template/,
    );
    t.match(
      errors.join('\n'),
      /a parameter must be a whole segment such as \{id\}; found "x\{y\}"/,
    );
  },
);

t.test('an expiresAt already past is a warning, not an error', async (t) => {
  const { errors, warnings } = await load(
    `${HEADER}spec:\n  routes:\n    - name: r\n      allow: [{ principals: ["*"], expiresAt: "2020-01-01T00:00:00Z" }]\n`,
  );
  t.same(errors, []);
  t.match(warnings, [
    /spec\.routes\[0\]\.allow\[0\]\.expiresAt: 2020-01-01T00:00:00Z is already past/,
  ]);
});

t.test('a YAML syntax error names file, line and column', async (t) => {
  const { errors, file } = await load(`${HEADER}spec:\n  routes: [\n`);
  t.match(errors, [
    new RegExp(`^${file.replace(/[.]/g, '\\.')}:\\d+:\\d+: document 1: YAML syntax`),
  ]);
});

t.test('the same resource defined twice is an error naming both files', async (t) => {
  const doc = `${HEADER}spec:\n  routes: []\n---\n${HEADER}spec:\n  routes: []\n`;
  const { errors } = await load(doc);
  t.match(errors, [/metadata\.name: the same resource is already defined in/]);
});

t.test(
  'two policies that can select the same workload but disagree on mode are an error',
  async (t) => {
    const other = (name: string, labels: string, mode: string) =>
      `apiVersion: postern.dev/v1alpha1\nkind: RoutePolicy\nmetadata: { name: ${name}, namespace: shop }\nspec:\n  selector: { matchLabels: { ${labels} } }\n  mode: ${mode}\n  routes: []\n`;
    const overlapping = await load(
      `${other('a', 'app: orders', 'enforce')}---\n${other('b', 'tier: backend', 'audit')}`,
    );
    t.match(overlapping.errors, [
      /RoutePolicy shop\/b: spec\.mode: "audit" conflicts with "enforce" in RoutePolicy shop\/a/,
    ]);
    const disjoint = await load(
      `${other('a', 'app: orders', 'enforce')}---\n${other('b', 'app: billing', 'audit')}`,
    );
    t.same(disjoint.errors, []);
  },
);

t.test('a route that an earlier route always wins over is a warning', async (t) => {
  const { errors, warnings } = await load(
    `${HEADER}spec:\n  routes:\n    - name: read-write\n      match: { methods: [GET, POST], path: { prefix: /orders/ } }\n      allow: [{ principals: ["*"] }]\n    - name: read\n      match: { methods: [GET], path: { prefix: /orders } }\n      allow: [{ principals: ["*"] }]\n`,
  );
  t.same(errors, []);
  t.match(warnings, [
    /spec\.routes\[1\]: route "read" can never be chosen: spec\.routes\[0\] \("read-write"\)/,
  ]);
});

t.test(
  'a later route with a method condition is not shadowed by an earlier one without',
  async (t) => {
    // GET /orders picks get-orders: a method condition outranks none.
    const { warnings } = await load(
      `${HEADER}spec:\n  routes:\n    - name: all-orders\n      match: { path: { prefix: /orders/ } }\n      allow: [{ principals: ["*"] }]\n    - name: get-orders\n      match: { methods: [GET], path: { prefix: /orders } }\n      allow: [{ principals: ["*"] }]\n`,
    );
    t.same(warnings, []);
  },
);

t.test('a {parameter} outside a template path, and an empty allow list, are errors', async (t) => {
  const { errors } = await load(
    `${HEADER}spec:\n  routes:\n    - name: r\n      match: { path: { exact: "/orders/{id}" } }\n      deny: [{ principals: ["*"] }]\n    - name: s\n      allow: []\n`,
  );
  t.match(
    errors.join('\n'),
    /spec\.routes\[0\]\.match\.path\.exact: \{parameters\} only work in a template path/,
  );
  t.match(errors.join('\n'), /spec\.routes\[1\]\.allow: expected a list of at least 1 item/);
});

t.test('structural errors do not hide semantic errors in other routes', async (t) => {
  const { errors } = await load(
    `${HEADER}spec:\n  routes:\n    - name: r\n      match: { methods: [FETCH] }\n    - name: s\n      match: { path: { prefix: nope } }\n      allow: [{ sourceIPs: [10.0.0.0/33] }]\n`,
  );
  t.match(errors.join('\n'), /spec\.routes\[0\]\.match\.methods\[0\]: expected one of/);
  t.match(
    errors.join('\n'),
    /spec\.routes\[1\]\.match\.path\.prefix: expected a path starting with \//,
  );
  t.match(
    errors.join('\n'),
    /spec\.routes\[1\]\.allow\[0\]\.sourceIPs\[0\]: expected an IP address or CIDR range/,
  );
});

t.test('a header match needs exactly one of exact, prefix, present', async (t) => {
  const { errors } = await load(
    `${HEADER}spec:\n  routes:\n    - name: r\n      match: { headers: [{ name: x-tenant, exact: a, prefix: b }] }\n`,
  );
  t.match(errors, [
    /spec\.routes\[0\]\.match\.headers\[0\]: expected exactly one of exact, prefix, present; found exact and prefix/,
  ]);
});

t.test('a policy path that is not canonical is an error that says what to write', async (t) => {
  const { errors } = await load(
    `${HEADER}spec:\n  routes:\n    - name: a\n      match: { path: { exact: "//admin" } }\n    - name: b\n      match: { path: { prefix: "/orders/./x/" } }\n    - name: c\n      match: { path: { exact: "/%7Euser" } }\n    - name: d\n      match: { path: { prefix: "/a;b" } }\n    - name: e\n      match: { path: { template: "/a/../{id}" } }\n`,
  );
  t.match(
    errors.join('\n'),
    /spec\.routes\[0\]\.match\.path\.exact: expected a canonical path .*write "\/admin"/,
  );
  t.match(
    errors.join('\n'),
    /spec\.routes\[1\]\.match\.path\.prefix: expected a canonical path .*write "\/orders\/x\/"/,
  );
  t.match(errors.join('\n'), /spec\.routes\[2\]\.match\.path\.exact: .*write "\/~user"/);
  t.match(
    errors.join('\n'),
    /spec\.routes\[3\]\.match\.path\.prefix: expected a canonical path; the path has a ;/,
  );
  t.match(errors.join('\n'), /spec\.routes\[4\]\.match\.path\.template: expected a canonical path/);
  t.equal(errors.length, 5);
});

t.test(
  'an empty policy file is an error (a save caught half-way must not drop its policies)',
  async (t) => {
    const { errors, file } = await load('');
    t.same(errors, [`${file}: the file is empty; delete it to remove its policies`]);
  },
);

t.test('every setting is enforced: a policy using them all gets no warning', async (t) => {
  const { errors, warnings } = await load(
    `${HEADER}spec:\n  mtls: PERMISSIVE\n  jwt: [{ issuer: https://idp, jwksUri: https://idp/jwks }]\n  routes:\n    - name: r\n      rateLimit: { requests: 10, per: 1s }\n      exfiltration: { maxResponseBytes: { bytes: 10Mi, per: 1h }, action: block }\n      allow: [{ jwt: { claims: { scope: read } } }]\n`,
  );
  t.same(errors, []);
  t.same(warnings, []);
});

t.test('claims asked for in a policy that names no JWT provider are warned of', async (t) => {
  const { errors, warnings } = await load(
    `${HEADER}spec:\n  routes:\n    - name: r\n      allow: [{ jwt: { claims: { scope: read } } }]\n`,
  );
  t.same(errors, []);
  t.match(
    warnings.join('\n'),
    /spec\.routes\[0\]\.allow\[0\]\.jwt: this policy names no JWT provider/,
  );
});

t.test('a file holding only comments is an error too', async (t) => {
  const { errors, file } = await load('# shop policies\n# (truncated)\n');
  t.same(errors, [`${file}: the file holds no document; delete it to remove its policies`]);
});

t.test('an expiresAt on a date that does not exist is refused, not rolled over', async (t) => {
  const { errors } = await load(
    `${HEADER}spec:\n  routes:\n    - name: r\n      allow: [{ principals: ["*"], expiresAt: "2099-02-30T00:00:00Z" }]\n`,
  );
  t.match(errors, [/spec\.routes\[0\]\.allow\[0\]\.expiresAt: expected an RFC 3339 timestamp/]);
});

t.test('service-account names may contain dots, as Kubernetes allows', async (t) => {
  const { errors } = await load(
    `${HEADER}spec:\n  routes:\n    - name: r\n      allow: [{ principals: ["spiffe://cluster.local/ns/shop/sa/build.bot"] }]\n`,
  );
  t.same(errors, []);
});

t.test('a header match on a header the sidecar strips or sets is an error', async (t) => {
  const { errors } = await load(
    `${HEADER}spec:\n  routes:\n    - name: r\n      match: { headers: [{ name: X-Postern-Principal, present: true }, { name: Connection, exact: close }] }\n`,
  );
  t.match(
    errors.join('\n'),
    /headers\[0\]\.name: "X-Postern-Principal" is a header the sidecar strips or sets itself/,
  );
  t.match(
    errors.join('\n'),
    /headers\[1\]\.name: "Connection" is a header the sidecar strips or sets itself/,
  );
});

t.test(
  'a header match on a client-address header the sidecar restates validated, and policy matched the client’s copy (review)',
  async (t) => {
    const { errors } = await load(
      `${HEADER}spec:\n  routes:\n    - name: r\n      match: { headers: [{ name: X-Real-IP, prefix: "10." }, { name: x-forwarded-for, present: true }, { name: Forwarded, present: true }, { name: Proxy, present: true }] }\n`,
    );
    const text = errors.join('\n');
    t.match(
      text,
      /headers\[0\]\.name: "X-Real-IP" is restated by the sidecar with the caller's address.*sourceIPs/,
    );
    t.match(text, /headers\[1\]\.name: "x-forwarded-for" is restated/);
    t.match(text, /headers\[2\]\.name: "Forwarded" is restated/);
    t.match(text, /headers\[3\]\.name: "Proxy" is a header the sidecar strips/);
  },
);

t.test(
  'a header match on a name with an underscore escaped the check for its - twin (review)',
  async (t) => {
    const { errors } = await load(
      `${HEADER}spec:\n  routes:\n    - name: r\n      match: { headers: [{ name: x_tenant, exact: a }, { name: x_forwarded_client_cert, present: true }] }\n`,
    );
    t.match(
      errors.join('\n'),
      /headers\[0\]\.name: "x_tenant" has an underscore.*match "x-tenant"/,
    );
    t.match(errors.join('\n'), /headers\[1\]\.name: "x_forwarded_client_cert" has an underscore/);
  },
);

t.test(
  'deny entries that a more specific route or a trailing slash escapes are warned about',
  async (t) => {
    const { errors, warnings } = await load(
      `${HEADER}spec:\n  routes:\n    - name: admin\n      match: { path: { prefix: /admin } }\n      deny: [{ principals: ["*"] }]\n    - name: admin-health\n      match: { path: { exact: /admin/health } }\n      allow: [{ principals: ["*"] }]\n    - name: delete\n      match: { path: { exact: /orders/delete } }\n      deny: [{ principals: ["*"] }]\n`,
    );
    t.same(errors, []);
    t.match(
      warnings.join('\n'),
      /spec\.routes\[1\]: route "admin-health" takes requests under "\/admin" away from route "admin"/,
    );
    t.match(
      warnings.join('\n'),
      /spec\.routes\[2\]\.match\.path\.exact: deny entries on exact "\/orders\/delete" do not cover "\/orders\/delete\/"/,
    );
  },
);

const route = (name: string, match: string, rest = '') =>
  `    - name: ${name}\n      match: ${match}\n${rest}`;
const DENY_ALL = '      deny: [{ principals: ["*"] }]\n';
const ALLOW_ALL = '      allow: [{ principals: ["*"] }]\n';

t.test(
  'a GET route shadows a later HEAD-only route on the same path, since HEAD is authorized as GET',
  async (t) => {
    const { warnings } = await load(
      `${HEADER}spec:\n  routes:\n${route('read', '{ methods: [GET], path: { prefix: /orders } }', ALLOW_ALL)}${route('head', '{ methods: [HEAD], path: { prefix: /orders } }', DENY_ALL)}`,
    );
    t.match(warnings, [
      /spec\.routes\[1\]: route "head" can never be chosen: spec\.routes\[0\] \("read"\)/,
    ]);
    const { warnings: none } = await load(
      `${HEADER}spec:\n  routes:\n${route('head', '{ methods: [HEAD], path: { prefix: /orders } }', ALLOW_ALL)}${route('read', '{ methods: [GET], path: { prefix: /orders } }', ALLOW_ALL)}`,
    );
    t.same(none, [], 'a HEAD route does not cover a later GET route');
  },
);

t.test(
  'a deny route restricted to some methods did not warn that other methods fall through to a broader route that allows them',
  async (t) => {
    const { errors, warnings, file } = await load(
      `${HEADER}spec:\n  routes:\n${route('admin-get', '{ methods: [GET], path: { prefix: /admin } }', DENY_ALL)}${route('orders', '{ path: { prefix: /orders } }', ALLOW_ALL)}${route('everything', '{ path: { prefix: / } }', ALLOW_ALL)}`,
    );
    t.same(errors, []);
    t.same(warnings, [
      `${file}: RoutePolicy shop/orders-api: spec.routes[0].match.methods: route "admin-get" denies only GET, HEAD on "/admin"; other methods there fall through to spec.routes[2] ("everything"), which allows them`,
    ]);
  },
);

t.test(
  'the broader route lets other methods through by its defaultAction when it has no allow entries',
  async (t) => {
    const policy = (defaultAction: string) =>
      `${HEADER}spec:\n  defaultAction: ${defaultAction}\n  routes:\n${route('admin-get', '{ methods: [GET], path: { exact: /admin } }', DENY_ALL)}${route('open', '{ path: { prefix: /admin } }')}`;
    const allowing = await load(policy('allow'));
    t.match(
      allowing.warnings.join('\n'),
      /route "admin-get" denies only GET, HEAD on "\/admin"; other methods there fall through to spec\.routes\[1\] \("open"\), which allows them/,
    );
    const denying = await load(policy('deny'));
    t.notMatch(
      denying.warnings.join('\n'),
      /fall through/,
      'defaultAction: deny lets none through',
    );
  },
);

t.test(
  'with no broader route, defaultAction: allow lets other methods on a method-restricted deny route through, and that is warned about',
  async (t) => {
    const policy = (defaultAction: string) =>
      `${HEADER}spec:\n  defaultAction: ${defaultAction}\n  routes:\n${route('admin-write', '{ methods: [POST, DELETE], path: { template: "/admin/{id}" } }', DENY_ALL)}`;
    const { warnings, file } = await load(policy('allow'));
    t.same(warnings, [
      `${file}: RoutePolicy shop/orders-api: spec.routes[0].match.methods: route "admin-write" denies only POST, DELETE on "/admin/{id}"; other methods there match no route, and defaultAction: allow lets them through`,
    ]);
    t.same((await load(policy('deny'))).warnings, []);
  },
);

t.test(
  'only the methods a method-restricted broader route takes are named as falling through',
  async (t) => {
    const { warnings } = await load(
      `${HEADER}spec:\n  routes:\n${route('admin-get', '{ methods: [GET], path: { prefix: /admin } }', DENY_ALL)}${route('admin-write', '{ methods: [POST, PUT, GET], path: { prefix: /admin } }', ALLOW_ALL)}`,
    );
    t.match(
      warnings.join('\n'),
      /route "admin-get" denies only GET, HEAD on "\/admin"; POST, PUT there fall through to spec\.routes\[1\] \("admin-write"\), which allows them/,
    );
  },
);

t.test('the most specific broader route is the one named, as the sidecar picks it', async (t) => {
  const { warnings } = await load(
    `${HEADER}spec:\n  routes:\n${route('everything', '{ path: { prefix: / } }', ALLOW_ALL)}${route('admin-get', '{ methods: [GET], path: { exact: /admin/users } }', DENY_ALL)}${route('admin', '{ path: { prefix: /admin } }', ALLOW_ALL)}`,
  );
  t.match(warnings.join('\n'), /fall through to spec\.routes\[2\] \("admin"\)/);
  t.notMatch(warnings.join('\n'), /"everything"/);
});

t.test('nothing falls through, so nothing is warned about, when', async (t) => {
  const quiet = async (what: string, routes: string, defaultAction = 'allow') => {
    const { errors, warnings } = await load(
      `${HEADER}spec:\n  defaultAction: ${defaultAction}\n  routes:\n${routes}`,
    );
    t.same(errors, [], what);
    t.notMatch(warnings.join('\n'), /fall through|lets them through/, what);
  };
  await quiet(
    'the deny route has no methods',
    `${route('admin', '{ path: { prefix: /admin } }', DENY_ALL)}${route('everything', '{ path: { prefix: / } }', ALLOW_ALL)}`,
  );
  await quiet(
    'the broader route denies the same callers too',
    `${route('admin-get', '{ methods: [GET], path: { prefix: /admin } }', DENY_ALL)}${route('everything', '{ path: { prefix: / } }', `${DENY_ALL}${ALLOW_ALL}`)}`,
  );
  await quiet(
    'the broader route denies everyone, with "*"',
    `${route('admin-get', '{ methods: [GET], path: { prefix: /admin } }', '      deny: [{ principals: [spiffe://cluster.local/ns/shop/sa/frontend] }]\n')}${route('everything', '{ path: { prefix: / } }', `${DENY_ALL}${ALLOW_ALL}`)}`,
  );
  await quiet(
    'the broader route has no allow entries and defaultAction is deny',
    `${route('admin-get', '{ methods: [GET], path: { prefix: /admin } }', DENY_ALL)}${route('everything', '{ path: { prefix: / } }')}`,
    'deny',
  );
  await quiet(
    'the route that takes the other methods is not broader (a sibling path)',
    `${route('admin-get', '{ methods: [GET], path: { prefix: /admin } }', DENY_ALL)}${route('orders', '{ path: { prefix: /orders } }', ALLOW_ALL)}`,
    'deny',
  );
  await quiet(
    'a broader route without methods denies the rest before a wider one could allow it',
    `${route('admin-get', '{ methods: [GET], path: { prefix: /admin/users } }', DENY_ALL)}${route('admin', '{ path: { prefix: /admin } }', DENY_ALL)}${route('everything', '{ path: { prefix: / } }', ALLOW_ALL)}`,
  );
});

t.test(
  'past its route bound, validation still reports every error but skips the route-against-route warnings, and says so unless the bound is 0',
  (t) => {
    const doc = parse(
      `${HEADER}spec:\n  routes:\n${route('read', '{ methods: [GET], path: { prefix: /orders } }', ALLOW_ALL)}${route('head', '{ methods: [HEAD], path: { prefix: /orders } }', DENY_ALL)}${route('read', '{ path: { exact: /x } }', ALLOW_ALL)}`,
    );
    const linted = validateRoutePolicy(doc, 'p');
    const unlinted = validateRoutePolicy(doc, 'p', new Date(), { lintUpTo: 0 });
    const bounded = validateRoutePolicy(doc, 'p', new Date(), { lintUpTo: 2 });
    t.match(linted.warnings, [{ message: /can never be chosen/ }]);
    t.same(unlinted.warnings, []);
    t.match(bounded.warnings, [
      { path: 'spec.routes', message: /^3 routes: the checks .* skipped/ },
    ]);
    t.same(validateRoutePolicy(doc, 'p', new Date(), { lintUpTo: 3 }).warnings, linted.warnings);
    t.same(unlinted.errors, linted.errors);
    t.match(unlinted.errors, [{ path: 'spec.routes[2].name', message: /duplicates the name/ }]);
    t.end();
  },
);

t.test(
  'a JWT provider names its algorithms from a list without HMAC, fetches keys over https (http on loopback only), and has an issuer of its own',
  async (t) => {
    const policy = (providers: string) =>
      `${HEADER}spec:\n  jwt:\n${providers}  routes:\n    - name: r\n      allow: [{ principals: ["*"] }]\n`;
    const good = await load(
      policy(
        '    - { issuer: https://idp, jwksUri: https://idp/jwks, algorithms: [ES256, EdDSA], typ: at+jwt, clockSkewSeconds: 30 }\n    - { issuer: http://dev, jwksUri: "http://127.0.0.1:8080/jwks" }\n    - { issuer: http://dev6, jwksUri: "http://[::1]:8080/jwks" }\n',
      ),
    );
    t.same(good.errors, []);
    const bad = await load(
      policy(
        '    - { issuer: https://idp, jwksUri: http://idp.example.com/jwks, algorithms: [HS256] }\n    - { issuer: https://idp, jwksUri: http://10.0.0.1/jwks }\n    - { issuer: https://other, jwksUri: https://idp/jwks, clockSkewSeconds: 3600 }\n',
      ),
    );
    t.match(bad.errors.join('\n'), /spec\.jwt\[0\]\.algorithms\[0\]: .*HS256/);
    t.match(
      bad.errors.join('\n'),
      /spec\.jwt\[1\]\.jwksUri: must be https:\/\/ \(http:\/\/ only on a loopback address\)/,
    );
    t.match(
      bad.errors.join('\n'),
      /spec\.jwt\[1\]\.issuer: duplicates the issuer of spec\.jwt\[0\]/,
    );
    t.match(bad.errors.join('\n'), /spec\.jwt\[2\]\.clockSkewSeconds/);
  },
);

t.test(
  'a JWT provider has one key source, public keys only, token sources the sidecar may read and claim headers it may own',
  async (t) => {
    const policy = (providers: string, routes = '') =>
      `${HEADER}spec:\n  jwt:\n${providers}  routes:\n    - name: r\n${routes}      allow: [{ principals: ["*"] }]\n`;
    const good = await load(
      policy(
        '    - issuer: https://idp\n      jwks: { keys: [{ kty: EC, crv: P-256, x: abc, y: def, kid: k1 }] }\n      fromHeaders: [{ name: Authorization, prefix: "Bearer " }, { name: x-jwt }]\n      fromCookies: [session]\n      outputClaimToHeaders: [{ header: x-user, claim: sub }, { header: x-postern-scope, claim: scope }]\n      requiredClaims: [sub]\n      forwardOriginalToken: true\n',
      ),
    );
    t.same(good.errors, []);
    const bad = await load(
      policy(
        [
          '    - { issuer: https://a }',
          '    - { issuer: https://b, jwksUri: https://b/jwks, jwks: { keys: [{ kty: EC }] } }',
          '    - issuer: https://c',
          '      jwks: { keys: [{ kty: EC, d: secret }, { kty: oct, k: abc }, { kty: DSA }, { kty: RSA, use: enc }] }',
          '      fromHeaders: [{ name: cookie }, { name: x-forwarded-for }, { name: x_jwt }]',
          '      outputClaimToHeaders:',
          '        - { header: x-postern-principal, claim: sub }',
          '        - { header: authorization, claim: sub }',
          '        - { header: x-user, claim: sub }',
          '        - { header: x-user, claim: email }',
          '    - { issuer: https://d, jwksUri: https://d/jwks, fromHeaders: [{ name: x-jwt }], outputClaimToHeaders: [{ header: X-Jwt, claim: sub }] }',
          '',
        ].join('\n'),
        '      match: { headers: [{ name: X-User, exact: alice }] }\n',
      ),
    );
    const errors = bad.errors.join('\n');
    t.match(errors, /spec\.jwt\[0\]: expected exactly one of jwksUri, jwks; found none/);
    t.match(
      errors,
      /spec\.jwt\[1\]: expected exactly one of jwksUri, jwks; found jwksUri and jwks/,
    );
    t.match(errors, /spec\.jwt\[2\]\.jwks\.keys\[0\]: is a private or symmetric key/);
    t.match(errors, /spec\.jwt\[2\]\.jwks\.keys\[1\]: is a private or symmetric key/);
    t.match(errors, /spec\.jwt\[2\]\.jwks\.keys\[2\]\.kty: expected RSA, EC or OKP/);
    t.match(errors, /spec\.jwt\[2\]\.jwks\.keys\[3\]\.use: expected sig/);
    t.match(
      errors,
      /spec\.jwt\[2\]\.fromHeaders\[0\]\.name: "cookie" cannot carry a token.*use fromCookies/,
    );
    t.match(
      errors,
      /spec\.jwt\[2\]\.fromHeaders\[1\]\.name: "x-forwarded-for" cannot carry a token/,
    );
    t.match(errors, /spec\.jwt\[2\]\.fromHeaders\[2\]\.name: "x_jwt" cannot carry a token/);
    t.match(
      errors,
      /outputClaimToHeaders\[0\]\.header: "x-postern-principal" cannot carry a claim/,
    );
    t.match(errors, /outputClaimToHeaders\[1\]\.header: "authorization" cannot carry a claim/);
    t.match(errors, /outputClaimToHeaders\[3\]\.header: "x-user" already carries the claim "sub"/);
    t.match(
      errors,
      /spec\.jwt\[3\]\.outputClaimToHeaders\[0\]\.header: "X-Jwt" is where this provider reads tokens/,
    );
    t.match(
      errors,
      /spec\.routes\[0\]\.match\.headers\[0\]\.name: "X-User" carries a verified claim/,
    );
  },
);

t.test(
  'rate limits: every key kind is accepted, a bad one is named with what is expected',
  async (t) => {
    const limit = (fields: string) =>
      load(
        `${HEADER}spec:\n  jwt: [{ issuer: https://idp, jwksUri: https://idp/jwks }]\n  rateLimit: { requests: 100, per: 1m }\n  routes:\n    - name: r\n      rateLimit: { requests: 10, per: 1s, ${fields} }\n`,
      );
    for (const key of ['principal', 'subject', 'claim:tenant_id', 'source-ip', 'route']) {
      const { errors, warnings } = await limit(`key: ${key}`);
      t.same([errors, warnings], [[], []], key);
    }
    const { errors } = await limit('key: x-user-id, burst: -1, scope: cluster');
    t.match(
      errors.join('\n'),
      /spec\.routes\[0\]\.rateLimit\.key: .*principal, subject, claim:<name>, source-ip, consumer or route/,
    );
    t.match(errors.join('\n'), /spec\.routes\[0\]\.rateLimit\.burst/);
    t.match(errors.join('\n'), /spec\.routes\[0\]\.rateLimit\.scope/);
  },
);

t.test("rate limits: the policy-wide default is checked like a route's", async (t) => {
  const { errors } = await load(
    `${HEADER}spec:\n  rateLimit: { requests: 0, per: 1d }\n  routes: [{ name: r }]\n`,
  );
  t.match(errors.join('\n'), /spec\.rateLimit\.requests/);
  t.match(errors.join('\n'), /spec\.rateLimit\.per: .*a duration such as 100ms/);
});

t.test(
  'rate limits: settings that do nothing or leave callers sharing a bucket are warned of',
  async (t) => {
    const { errors, warnings } = await load(
      `${HEADER}spec:\n  rateLimit: { requests: 5, per: 1s, key: subject }\n  routes:\n    - name: a\n      rateLimit: { requests: 5, per: 1s, key: consumer }\n    - name: b\n      rateLimit: { requests: 5, per: 1s, failureMode: closed }\n`,
    );
    t.same(errors, []);
    const text = warnings.join('\n');
    t.match(
      text,
      /spec\.rateLimit\.key: this policy names no JWT provider .*share one subject bucket/,
    );
    t.match(
      text,
      /spec\.routes\[0\]\.rateLimit\.key: consumers are API-key holders at postern gateway/,
    );
    t.match(text, /spec\.routes\[1\]\.rateLimit\.failureMode: applies to global limits only/);
  },
);
