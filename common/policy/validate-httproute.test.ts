import { mkdtemp, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import t from 'tap';
import { loadPolicies } from './files.ts';

async function load(yaml: string) {
  const dir = await mkdtemp(join(tmpdir(), 'postern-httproute-'));
  const file = join(dir, 'routes.yaml');
  await writeFile(file, yaml);
  return { ...(await loadPolicies([dir])), file };
}

const HEADER =
  'apiVersion: gateway.networking.k8s.io/v1\nkind: HTTPRoute\nmetadata: { name: shop, namespace: shop }\n';

t.test(
  'an HTTPRoute beside a RoutePolicy loads, with every feature the gateway implements',
  async (t) => {
    const { httpRoutes, policies, errors, warnings } = await load(`${HEADER}spec:
  parentRefs: [{ name: postern-gateway }]
  hostnames: [shop.example.com, "*.shop.example.com"]
  rules:
    - name: orders-v2
      matches:
        - path: { type: PathPrefix, value: /api/orders }
          headers: [{ name: x-canary, value: "1" }]
          queryParams: [{ name: v, value: "2" }]
          method: GET
      filters:
        - type: RequestHeaderModifier
          requestHeaderModifier: { set: [{ name: x-from, value: gateway }], remove: [x-debug] }
        - type: ResponseHeaderModifier
          responseHeaderModifier: { add: [{ name: cache-control, value: no-store }] }
        - type: URLRewrite
          urlRewrite: { hostname: orders.shop, path: { type: ReplacePrefixMatch, replacePrefixMatch: /orders } }
      backendRefs: [{ name: orders, port: 80, weight: 90 }, { name: orders-canary, port: 80, weight: 10 }]
    - matches: [{ path: { type: Exact, value: /old } }]
      filters: [{ type: RequestRedirect, requestRedirect: { path: { type: ReplaceFullPath, replaceFullPath: /new }, statusCode: 301 } }]
---
apiVersion: postern.dev/v1alpha1
kind: RoutePolicy
metadata: { name: gateway, namespace: shop }
spec:
  routes: [{ name: all, match: { path: { prefix: / } }, allow: [{ principals: ["*"] }] }]
`);
    t.same(errors, []);
    t.same(warnings, []);
    t.equal(httpRoutes.length, 1);
    t.equal(policies.length, 1);
    t.equal(httpRoutes[0]!.metadata.namespace, 'shop');
  },
);

t.test(
  'every HTTPRoute error is reported at once, each with file, resource and JSON path',
  async (t) => {
    const { errors, warnings, httpRoutes, file } = await load(`${HEADER}spec:
  parentRefs: [{ name: gw }]
  rules:
    - matches:
        - path: { type: Exact, value: orders }
          headers: [{ name: X-A, value: "1" }, { name: x-a, value: "2" }, { name: "bad header", value: x }]
        - path: { type: PathPrefix, value: /a//b }
      filters:
        - type: RequestHeaderModifier
          requestHeaderModifier: { set: [{ name: x-a, value: "1" }], remove: [X-A, x-postern-principal] }
        - type: RequestHeaderModifier
          responseHeaderModifier: { add: [{ name: y, value: "1" }] }
        - type: URLRewrite
          urlRewrite: { path: { type: ReplacePrefixMatch, replaceFullPath: /x } }
        - type: RequestRedirect
          requestRedirect: { statusCode: 302 }
      backendRefs: [{ name: orders }]
`);
    t.same(httpRoutes, [], 'a route with errors is not loaded');
    const at = (path: string, message: RegExp) =>
      t.ok(
        errors.some(
          (e) => e.startsWith(`${file}: HTTPRoute shop/shop: ${path}: `) && message.test(e),
        ),
        `${path}: ${message}`,
      );
    at('spec.rules[0].matches[0].path.value', /absolute path starting with \//);
    at('spec.rules[0].matches[0].headers[1].name', /header "x-a" is matched already by/);
    at('spec.rules[0].matches[0].headers[2].name', /HTTP field name/);
    at('spec.rules[0].matches[1].path.value', /could never match; write "\/a\/b"/);
    at('spec.rules[0].filters[0].requestHeaderModifier.remove[0]', /modified already/);
    at('spec.rules[0].filters[0].requestHeaderModifier.remove[1]', /strips or sets itself/);
    at(
      'spec.rules[0].filters[1].responseHeaderModifier',
      /belongs to a filter of type ResponseHeaderModifier/,
    );
    at(
      'spec.rules[0].filters[1].requestHeaderModifier',
      /is required for a filter of type RequestHeaderModifier/,
    );
    at(
      'spec.rules[0].filters[2].urlRewrite.path.replaceFullPath',
      /belongs to type ReplaceFullPath/,
    );
    at(
      'spec.rules[0].filters[2].urlRewrite.path.replacePrefixMatch',
      /is required for type ReplacePrefixMatch/,
    );
    at('spec.rules[0].filters', /not both/);
    t.ok(warnings.some((w) => /its backends are never called/.test(w)));
  },
);

t.test('structure errors name the field and what was expected', async (t) => {
  const { errors, file } = await load(`${HEADER}spec:
  hostnames: ["*.*.example.com"]
  rules: [{ matches: [{ method: FETCH }], retry: { attempts: 2 } }]
`);
  t.match(errors, [`${file}: HTTPRoute shop/shop: spec.parentRefs: is required`]);
  t.ok(
    errors.some((e) =>
      /spec\.hostnames\[0\]: expected a host name such as api\.example\.com/.test(e),
    ),
  );
  t.ok(
    errors.some((e) => /spec\.rules\[0\]\.matches\[0\]\.method: expected one of GET, HEAD/.test(e)),
  );
  t.ok(
    errors.some((e) =>
      /spec\.rules\[0\]\.retry: is not a known field; expected one of name, timeouts, matches, filters, backendRefs/.test(
        e,
      ),
    ),
    'a Gateway API field the gateway does not implement is refused by name, not ignored',
  );
});

t.test(
  'CORS origins, credentials with any origin, a backend timeout longer than the request and bad annotations are errors',
  async (t) => {
    const { errors } = await load(`apiVersion: gateway.networking.k8s.io/v1
kind: HTTPRoute
metadata:
  name: shop
  namespace: shop
  annotations: { postern.dev/idle-timeout: soon, postern.dev/max-request-bytes: lots }
spec:
  parentRefs: [{ name: gw }]
  rules:
    - timeouts: { request: 1s, backendRequest: 2s }
      filters:
        - type: CORS
          cors: { allowOrigins: ["*", "ftp://x.example.com"], allowCredentials: true, allowHeaders: ["bad header"] }
      backendRefs: [{ name: orders }]
    - timeouts: { request: 10 seconds }
      backendRefs: [{ name: orders }]
`);
    const expect = [
      /metadata\.annotations\.postern\.dev\/idle-timeout: "soon" is not a Gateway API duration/,
      /metadata\.annotations\.postern\.dev\/max-request-bytes: "lots" is not a size/,
      /spec\.rules\[0\]\.timeouts\.backendRequest: must not be longer than timeouts\.request \(1s\)/,
      /spec\.rules\[0\]\.filters\[0\]\.cors\.allowOrigins\[1\]: "ftp:\/\/x\.example\.com" is not an origin/,
      /spec\.rules\[0\]\.filters\[0\]\.cors\.allowCredentials: browsers refuse credentials for any origin/,
      /spec\.rules\[0\]\.filters\[0\]\.cors\.allowHeaders\[0\]: "bad header" is not a header name/,
      /spec\.rules\[1\]\.timeouts\.request: expected a Gateway API duration such as 500ms/,
    ];
    for (const pattern of expect)
      t.ok(
        errors.some((e) => pattern.test(e)),
        String(pattern),
      );
    t.equal(errors.length, expect.length, errors.join('\n'));
  },
);

t.test(
  'regression: a backend in another namespace (no ReferenceGrant) and a framing header in a modifier were accepted',
  async (t) => {
    const { errors } = await load(`${HEADER}spec:
  parentRefs: [{ name: gw }]
  rules:
    - filters:
        - type: ResponseHeaderModifier
          responseHeaderModifier: { set: [{ name: Content-Length, value: "0" }], remove: [Transfer-Encoding] }
      backendRefs: [{ name: billing, namespace: finance }]
`);
    t.ok(
      errors.some((e) =>
        /spec\.rules\[0\]\.backendRefs\[0\]\.namespace: finance is not the route's namespace \(shop\): .*ReferenceGrant/.test(
          e,
        ),
      ),
      errors.join('\n'),
    );
    t.ok(errors.some((e) => /set\[0\]\.name: "Content-Length" frames the message/.test(e)));
    t.ok(errors.some((e) => /remove\[0\]: "Transfer-Encoding" frames the message/.test(e)));
  },
);

t.test(
  'a rule without a backend, or whose backends all weigh 0, warns that it answers 500',
  async (t) => {
    const { errors, warnings } = await load(`${HEADER}spec:
  parentRefs: [{ name: gw }]
  rules:
    - matches: [{ path: { value: /a } }]
    - backendRefs: [{ name: orders, weight: 0 }]
`);
    t.same(errors, []);
    t.ok(warnings.some((w) => /spec\.rules\[0\]\.backendRefs: no backend/.test(w)));
    t.ok(warnings.some((w) => /spec\.rules\[1\]\.backendRefs: every backend has weight 0/.test(w)));
  },
);

t.test('the same HTTPRoute twice is an error naming the first file', async (t) => {
  const route = `${HEADER}spec:\n  parentRefs: [{ name: gw }]\n`;
  const { errors } = await load(`${route}---\n${route}`);
  t.match(
    errors.join('\n'),
    /HTTPRoute shop\/shop: metadata.name: the same resource is already defined in/,
  );
});

t.test('a structural error in one rule does not hide the semantic errors of another', async (t) => {
  const { errors } = await load(`${HEADER}spec:
  parentRefs: [{ name: gw }]
  rules:
    - backendRefs: [{ name: orders, wieght: 3 }]
    - matches: [{ path: { type: Exact, value: orders } }]
      backendRefs: [{ name: orders }]
`);
  t.ok(
    errors.some((e) => /spec\.rules\[0\]\.backendRefs\[0\]\.wieght: is not a known field/.test(e)),
  );
  t.ok(
    errors.some((e) =>
      /spec\.rules\[1\]\.matches\[0\]\.path\.value: expected an absolute path/.test(e),
    ),
  );
});
