import t from 'tap';
import type { RoutePolicy } from '../../common/policy/schema.ts';
import { capAlert, policyCaps } from './cap.ts';
import { historyOf, MiB, usage } from './test-fixtures.ts';

t.test("a policy's cap counts over its own span and needs no learning", async (t) => {
  // 11 windows of 4 MiB: with this one, the hour the cap spans.
  const { history, nextMs } = historyOf(11, () => 4 * MiB);
  const cap = { bytes: 50 * MiB, perSeconds: 3600, action: 'block' as const };
  t.equal(
    capAlert(usage({ responseBytes: 6 * MiB }), history, cap, nextMs),
    undefined,
    '50 MiB is within',
  );
  t.match(capAlert(usage({ responseBytes: 7 * MiB }), history, cap, nextMs), {
    detector: 'cap',
    evidence: { responseBytes: 51 * MiB, capBytes: 50 * MiB, perSeconds: 3600, action: 'block' },
  });
});

t.test(
  'caps come from policies by namespace and route name; two caps on one route both hold',
  async (t) => {
    const policy = (name: string, bytes: string, per: string) =>
      ({
        apiVersion: 'postern.dev/v1alpha1',
        kind: 'RoutePolicy',
        metadata: { name, namespace: 'shop' },
        spec: {
          routes: [
            {
              name: 'get-order',
              exfiltration: { maxResponseBytes: { bytes, per }, action: 'block' },
            },
          ],
        },
      }) as RoutePolicy;
    const caps = policyCaps([policy('a', '1Gi', '1h'), policy('b', '100Mi', '1m')]);
    t.same(caps('shop/orders', 'get-order'), [
      { bytes: 1024 * MiB, perSeconds: 3600, action: 'block' },
      { bytes: 100 * MiB, perSeconds: 60, action: 'block' },
    ]);
    t.same(caps('billing/orders', 'get-order'), [], 'another namespace');
    t.same(caps('shop/orders', 'list-orders'), []);
  },
);
