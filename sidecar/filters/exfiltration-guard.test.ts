import type { IncomingMessage } from 'node:http';
import t from 'tap';
import { UNAUTHENTICATED_CALLER } from '../../common/usage.ts';
import { ByteBudgets } from '../exfiltration/byte-budgets.ts';
import { decision } from '../policy/decision.ts';
import { blockKey, type SnapshotState } from '../policy/snapshot-state.ts';
import { SidecarMetrics } from '../telemetry/metrics.ts';
import { exfiltrationGuard, settleResponse } from './exfiltration-guard.ts';
import type { Exchange } from './filter.ts';

const NOW = 1_800_000_000_000;
const CAPPED = decision({
  allowed: true,
  reason: 'route-default-allow',
  mode: 'enforce',
  policy: 'shop/orders-api',
  route: 'export',
  responseCap: { route: 'shop/orders-api/export', bytes: 1000, perMs: 3_600_000 },
});

function guard(blocked: string[] = []) {
  const state = { current: { blocked: new Set(blocked) } } as unknown as SnapshotState;
  const budgets = new ByteBudgets();
  const filter = exfiltrationGuard({
    state,
    budgets,
    metrics: new SidecarMetrics(),
    now: () => NOW,
  });
  return { filter, budgets };
}

const exchange = (principal?: string): Exchange => ({
  req: { method: 'GET', headers: {} } as IncomingMessage,
  startedAt: 0,
  decision: CAPPED,
  ...(principal ? { principal } : {}),
});

t.test('a caller without a verified identity is capped like any caller, as one', async (t) => {
  const { filter, budgets } = guard();
  const first = exchange();
  t.equal(filter.onRequest(first), undefined);
  t.equal(first.responseLimit, 1000, 'it gets the cap');
  first.responseBytes = 1000;
  settleResponse(first, undefined, { budgets, metrics: new SidecarMetrics(), now: () => NOW });
  const second = exchange();
  t.match(filter.onRequest(second), { status: 403, code: 'POSTERN_EXFILTRATION_CAP' });
  t.equal(
    filter.onRequest(exchange('spiffe://cluster.local/ns/shop/sa/frontend')),
    undefined,
    'an identified caller counts apart',
  );
});

t.test('a block on the unauthenticated caller refuses requests without an identity', async (t) => {
  const { filter } = guard([blockKey(UNAUTHENTICATED_CALLER, 'export')]);
  t.match(filter.onRequest(exchange()), { status: 403, code: 'POSTERN_EXFILTRATION_BLOCKED' });
  t.equal(filter.onRequest(exchange('spiffe://cluster.local/ns/shop/sa/frontend')), undefined);
});
