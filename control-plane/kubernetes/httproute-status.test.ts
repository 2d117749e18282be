import t from 'tap';
import { desiredParents, mergedParents, POSTERN_CONTROLLER } from './httproute-status.ts';

const route = (status?: unknown, parentRefs: unknown[] = [{ name: 'edge' }]) => ({
  metadata: { namespace: 'shop', name: 'r', generation: 4 },
  spec: { parentRefs, rules: [{ backendRefs: [{ name: 'orders' }] }] },
  ...(status ? { status } : {}),
});
const serves = () => true;

t.test(
  'a condition that did not change keeps its lastTransitionTime; one that did gets now',
  async (t) => {
    const first = desiredParents(route(), [], serves, new Date('2026-11-26T10:00:00Z'));
    t.equal(first[0]!.conditions[0]!.lastTransitionTime, '2026-11-26T10:00:00Z');
    const again = desiredParents(
      route({ parents: first }),
      [],
      serves,
      new Date('2026-11-26T11:00:00Z'),
    );
    t.equal(again[0]!.conditions[0]!.lastTransitionTime, '2026-11-26T10:00:00Z', 'unchanged');
    t.equal(mergedParents(route({ parents: first }), again), undefined, 'nothing to write');
    const broken = desiredParents(
      route({ parents: first }),
      [{ resource: 'HTTPRoute shop/r', path: 'spec.rules[0]', message: 'bad' }],
      serves,
      new Date('2026-11-26T12:00:00Z'),
    );
    t.match(broken[0]!.conditions[0], {
      status: 'False',
      reason: 'UnsupportedValue',
      message: 'HTTPRoute shop/r: spec.rules[0]: bad',
      lastTransitionTime: '2026-11-26T12:00:00Z',
    });
  },
);

t.test(
  'our entry for a parent the route no longer names is removed; one for a parent not served now stays',
  async (t) => {
    const ours = (name: string) => ({
      parentRef: { name },
      controllerName: POSTERN_CONTROLLER,
      conditions: [],
    });
    const other = { parentRef: { name: 'x' }, controllerName: 'example.com/other', conditions: [] };
    const current = route({ parents: [ours('gone'), other, ours('offline')] }, [
      { name: 'offline' },
      { name: 'x' },
    ]);
    const merged = mergedParents(
      current,
      desiredParents(current, [], () => false, new Date()),
    );
    t.same(merged, [other, ours('offline')]);
  },
);

t.test('a backendRef to something other than a core Service is InvalidKind', async (t) => {
  const [parent] = desiredParents(
    {
      ...route(),
      spec: {
        parentRefs: [{ name: 'edge' }],
        rules: [{ backendRefs: [{ group: 'example.com', kind: 'Bucket', name: 'b' }] }],
      },
    },
    [],
    serves,
    new Date(),
  );
  t.match(parent!.conditions[1], {
    type: 'ResolvedRefs',
    status: 'False',
    reason: 'InvalidKind',
    message: /spec\.rules\[0\]\.backendRefs\[0\]: example\.com\/Bucket b/,
  });
});
