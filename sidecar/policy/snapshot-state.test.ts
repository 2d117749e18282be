import t from 'tap';
import type { RoutePolicy } from '../../common/policy/schema.ts';
import { SnapshotState } from './snapshot-state.ts';

const policy = (name: string, mode: 'enforce' | 'audit', prefix: string): RoutePolicy => ({
  apiVersion: 'postern.dev/v1alpha1',
  kind: 'RoutePolicy',
  metadata: { name, namespace: 'shop' },
  spec: {
    mode,
    routes: [
      {
        name: 'r',
        match: { path: { prefix } },
        allow: [{ principals: ['spiffe://cluster.local/ns/shop/sa/frontend'] }],
      },
    ],
  },
});
const snapshot = (version: string, policies: RoutePolicy[]) => ({
  version,
  hash: version,
  meshDefault: 'deny',
  policies,
  registry: [],
});

t.test('a snapshot is applied whole and becomes current', async (t) => {
  const state = new SnapshotState('shop');
  t.same(state.apply(snapshot('1.1', [policy('a', 'enforce', '/orders')])), { ok: true });
  t.equal(state.current?.snapshot.version, '1.1');
});

t.test(
  'a snapshot whose policies disagree on mode is rejected and the last good one stays',
  async (t) => {
    // An audit policy beside an enforcing one would let its routes switch enforcement off.
    const state = new SnapshotState('shop');
    state.apply(snapshot('1.1', [policy('a', 'enforce', '/orders')]));
    const result = state.apply(
      snapshot('1.2', [policy('a', 'enforce', '/orders'), policy('b', 'audit', '/orders/items')]),
    );
    t.equal(result.ok, false);
    t.match(
      !result.ok && result.reason,
      /RoutePolicy shop\/b: spec\.mode: "audit" conflicts with "enforce" in RoutePolicy shop\/a/,
    );
    t.equal(state.current?.snapshot.version, '1.1');
  },
);

t.test('something that is not a snapshot is rejected with what was expected', async (t) => {
  const state = new SnapshotState('shop');
  t.match(state.apply({ version: 1 }), {
    ok: false,
    reason: /expected version, hash, meshDefault, policies\[\], registry\[\]/,
  });
  t.equal(state.current, undefined);
});

t.test(
  'a snapshot with malformed policies is rejected with the validation errors, not a crash',
  async (t) => {
    const state = new SnapshotState('shop');
    const result = state.apply({
      version: '1.1',
      hash: 'h',
      meshDefault: 'deny',
      policies: [{}, {}],
      registry: [],
    });
    t.equal(result.ok, false);
    t.match(!result.ok && result.reason, /policies\[0\]: apiVersion: is required/);
  },
);

t.test('revocations are compiled to a lookup; a malformed list is rejected whole', async (t) => {
  const state = new SnapshotState('shop');
  const base = { version: '1.1', hash: 'h', meshDefault: 'deny', policies: [], registry: [] };
  t.match(
    state.apply({
      ...base,
      revoked: [{ spiffeId: 'spiffe://td/ns/a/sa/b', notBeforeUpTo: 'yesterday' }],
    }),
    { ok: false },
  );
  t.same(
    state.apply({
      ...base,
      revoked: [{ spiffeId: 'spiffe://td/ns/a/sa/b', notBeforeUpTo: '2026-11-25T10:00:00Z' }],
    }),
    { ok: true },
  );
  t.same(
    [...state.current!.revoked],
    [['spiffe://td/ns/a/sa/b', Date.parse('2026-11-25T10:00:00Z')]],
  );
  t.same(state.apply(base), { ok: true }, 'a snapshot from an older control plane has none');
  t.equal(state.current!.revoked.size, 0);
});

t.test(
  'a snapshot nacked for its policies still brings its revocations (a revocation waited for policies the sidecar could apply; review)',
  async (t) => {
    const state = new SnapshotState('shop');
    const base = { version: '1.1', hash: 'h', meshDefault: 'deny', policies: [], registry: [] };
    t.same(state.apply(base), { ok: true });
    const badPolicy = {
      apiVersion: 'postern.dev/v1alpha1',
      kind: 'RoutePolicy',
      metadata: { name: 'x', namespace: 'shop' },
      spec: { routes: [{ name: 'Not A Name' }] },
    };
    const result = state.apply({
      ...base,
      version: '1.2',
      policies: [badPolicy],
      revoked: [{ spiffeId: 'spiffe://td/ns/a/sa/b', notBeforeUpTo: '2026-11-25T10:00:00Z' }],
    });
    t.equal(result.ok, false, 'the snapshot is still rejected');
    t.equal(state.current!.snapshot.version, '1.1', 'the last good policies stay');
    t.ok(state.current!.revoked.has('spiffe://td/ns/a/sa/b'), 'the revocation applies');
  },
);

t.test(
  "a gateway's HTTPRoutes are validated again and compiled with the snapshot; a bad one keeps the last good snapshot",
  async (t) => {
    const state = new SnapshotState('shop');
    const route = (path: string) => ({
      apiVersion: 'gateway.networking.k8s.io/v1',
      kind: 'HTTPRoute',
      metadata: { name: 'edge-routes', namespace: 'shop' },
      spec: {
        parentRefs: [{ name: 'edge' }],
        rules: [
          {
            matches: [{ path: { type: 'PathPrefix', value: path } }],
            backendRefs: [{ name: 'orders' }],
          },
        ],
      },
    });
    t.same(state.apply({ ...snapshot('1.1', []), httpRoutes: [route('/api')] }), { ok: true });
    const request = {
      host: 'shop.example.com',
      method: 'GET',
      path: '/api/x',
      header: () => undefined,
      query: () => undefined,
    };
    t.match(state.current?.httpRoutes?.match(request), { route: 'shop/edge-routes' });
    const refused = state.apply({ ...snapshot('1.2', []), httpRoutes: [route('api')] });
    t.match(refused, {
      ok: false,
      reason:
        /HTTPRoute shop\/edge-routes: spec\.rules\[0\]\.matches\[0\]\.path\.value: expected an absolute path/,
    });
    t.equal(state.current?.snapshot.version, '1.1', 'the last good snapshot stays');
    t.same(state.apply(snapshot('1.3', [])), { ok: true });
    t.equal(state.current?.httpRoutes, undefined, 'no routes: not a gateway');
  },
);
