import t from 'tap';
import { type Dispatcher, request } from 'undici';
import {
  adminMetrics,
  clientCredentials,
  mtlsAgent,
  ordersBehindSidecar,
  TESTER,
} from '../helpers.ts';

const OTHER = 'spiffe://cluster.local/ns/default/sa/other';

const POLICIES = `
apiVersion: postern.dev/v1alpha1
kind: RoutePolicy
metadata: { name: orders-api, namespace: shop }
spec:
  selector: { matchLabels: { app: orders } }
  rateLimit: { requests: 2, per: 1s }
  routes:
    - name: limited
      match: { path: { prefix: /orders } }
      allow: [{ principals: ["${TESTER}", "${OTHER}"] }]
      rateLimit: { requests: 3, per: 1s, burst: 1 }
    - name: defaulted
      match: { path: { prefix: /default } }
      allow: [{ principals: ["*"] }]
    - name: by-address
      match: { path: { prefix: /by-address } }
      allow: [{ principals: ["*"] }]
      rateLimit: { requests: 1, per: 1m, key: source-ip }
    - name: others-only
      match: { path: { prefix: /admin } }
      allow: [{ principals: ["${OTHER}"] }]
      rateLimit: { requests: 1, per: 1m, key: route }
`;

const AUDITED = `
apiVersion: postern.dev/v1alpha1
kind: RoutePolicy
metadata: { name: reports, namespace: shop }
spec:
  selector: { matchLabels: { app: orders } }
  mode: audit
  routes:
    - name: audited
      match: { path: { prefix: /reports } }
      allow: [{ principals: ["*"] }]
      rateLimit: { requests: 1, per: 1m }
`;

t.test('local rate limits on the inbound path, with the sidecar clock held still', async (t) => {
  let clock = Date.now();
  const { mesh, app, sidecar, agent } = await ordersBehindSidecar(t, POLICIES, TESTER, {
    now: () => clock,
  });
  const other = mtlsAgent(await clientCredentials(mesh.controlPlane.ca, OTHER));
  t.teardown(() => other.close());
  const call = async (path: string, dispatcher: Dispatcher = agent) => {
    const response = await request(`https://127.0.0.1:${sidecar.inboundPort}${path}`, {
      dispatcher,
    });
    const body = (await response.body.json()) as { error?: Record<string, unknown> };
    return { status: response.statusCode, headers: response.headers, body };
  };
  const statuses = async (path: string, times: number, dispatcher?: Dispatcher) => {
    const seen: number[] = [];
    for (let i = 0; i < times; i++) seen.push((await call(path, dispatcher)).status);
    return seen;
  };

  t.test('a full bucket admits requests + burst, each answer saying what is left', async (t) => {
    const before = app.requests.length;
    const answers = [];
    for (let i = 0; i < 4; i++) answers.push(await call('/orders'));
    t.same(
      answers.map((a) => a.status),
      [200, 200, 200, 200],
    );
    t.same(
      answers.map((a) => a.headers.ratelimit),
      [
        // t: whole seconds until the bucket is full again (a token per 333 ms).
        '"shop/orders-api/limited";r=3;t=1',
        '"shop/orders-api/limited";r=2;t=1',
        '"shop/orders-api/limited";r=1;t=1',
        '"shop/orders-api/limited";r=0;t=2',
      ],
    );
    t.equal(answers[0]!.headers['ratelimit-policy'], '"shop/orders-api/limited";q=3;w=1');

    const refused = await call('/orders');
    t.equal(refused.status, 429);
    t.equal(refused.headers['retry-after'], '1');
    t.equal(refused.headers['ratelimit-policy'], '"shop/orders-api/limited";q=3;w=1');
    t.equal(refused.headers.ratelimit, '"shop/orders-api/limited";r=0;t=1');
    t.match(refused.body.error, {
      code: 'POSTERN_RATE_LIMITED',
      policy: 'shop/orders-api',
      route: 'limited',
      retryAfterSeconds: 1,
    });
    t.equal(app.requests.length - before, 4, 'the refused request never reached the app');
  });

  t.test('each principal has its own bucket', async (t) => {
    t.same(await statuses('/orders', 1, other), [200]);
  });

  t.test('a token comes back after per / requests', async (t) => {
    clock += 333;
    t.same(await statuses('/orders', 1), [429], 'not yet');
    clock += 1;
    t.same(await statuses('/orders', 2), [200, 429]);
  });

  t.test("a route without a limit of its own takes the policy's default", async (t) => {
    t.same(await statuses('/default', 3), [200, 200, 429]);
  });

  t.test('source-ip: callers from one address share a bucket', async (t) => {
    t.same(await statuses('/by-address', 1), [200]);
    t.same(await statuses('/by-address', 1, other), [429], 'another principal, the same address');
  });

  t.test('a request authorization denies never spends the bucket', async (t) => {
    t.same(await statuses('/admin', 5), [403, 403, 403, 403, 403]);
    t.same(
      await statuses('/admin', 2, other),
      [200, 429],
      'the one request a minute was still there',
    );
  });

  t.test('limited requests are counted per route and key kind', async (t) => {
    const metrics = await adminMetrics(sidecar.adminPort);
    t.match(
      metrics,
      'postern_rate_limit_decisions_total{route="shop/orders-api/limited",key="principal",outcome="limited"} 3',
    );
  });

  t.test('/config shows the limits in force', async (t) => {
    const config = (await (
      await request(`http://127.0.0.1:${sidecar.adminPort}/config`)
    ).body.json()) as {
      routes: { route: string; rateLimit?: unknown }[];
      rateLimitBuckets: number;
    };
    t.same(config.routes.find((r) => r.route === 'limited')?.rateLimit, {
      requests: 3,
      perMs: 1000,
      burst: 1,
      key: 'principal',
      scope: 'local',
    });
    t.ok(config.rateLimitBuckets >= 5, 'and how many buckets it holds');
  });
});

t.test('audit mode counts what a limit would refuse and refuses nothing', async (t) => {
  const { sidecar, agent } = await ordersBehindSidecar(t, AUDITED, TESTER);
  const statuses = [];
  let last: string | string[] | undefined;
  for (let i = 0; i < 3; i++) {
    const response = await request(`https://127.0.0.1:${sidecar.inboundPort}/reports`, {
      dispatcher: agent,
    });
    await response.body.dump();
    statuses.push(response.statusCode);
    last = response.headers.ratelimit;
  }
  t.same(statuses, [200, 200, 200]);
  t.match(
    last,
    /^"shop\/reports\/audited";r=0;t=(59|60)$/,
    'the caller still learns where it stands',
  );
  const metrics = await adminMetrics(sidecar.adminPort);
  t.match(
    metrics,
    'postern_rate_limit_decisions_total{route="shop/reports/audited",key="principal",outcome="would-limit"} 2',
  );
});
