import t from 'tap';
import { DetectionEngine } from './engine.ts';
import { offWorkloadAlert } from './off-workload.ts';
import { FRONTEND, T0, usage } from './test-fixtures.ts';

t.test('an identity presented from where its pods run is no news', async (t) => {
  const seen = usage({ addresses: new Set(['10.0.1.5', '10.0.1.6']) });
  t.equal(offWorkloadAlert(seen, new Set(['10.0.1.5', '10.0.1.6', '10.0.1.7']), T0), undefined);
});

t.test('an identity presented from an address where none of its pods runs alerts', async (t) => {
  const seen = usage({
    addresses: new Set(['10.0.1.5', '203.0.113.9']),
    traceIds: new Set(['4bf92f3577b34da6a3ce929d0e0e4736']),
  });
  const alert = offWorkloadAlert(seen, new Set(['10.0.1.5']), T0);
  t.match(alert, {
    detector: 'off-workload',
    severity: 'high',
    principal: FRONTEND,
    workload: 'shop/orders',
    route: 'get-order',
    evidence: {
      presentedFrom: ['203.0.113.9'],
      registeredAt: ['10.0.1.5'],
      sampleTraceIds: ['4bf92f3577b34da6a3ce929d0e0e4736'],
    },
  });
});

t.test('an identity that runs nowhere in the mesh is left to novelty', async (t) => {
  t.equal(offWorkloadAlert(usage({ addresses: new Set(['10.9.9.9']) }), undefined, T0), undefined);
});

const report = (start: number, source: Record<string, string>, addresses: string[] = []) => ({
  source: { workload: source.workload!, namespace: 'shop', ...source },
  window: { start: new Date(start).toISOString(), seconds: 300 },
  entries: addresses.length
    ? [
        {
          direction: 'inbound' as const,
          principal: FRONTEND,
          route: 'get-order',
          requests: 10,
          requestBytes: 0,
          responseBytes: 100,
          addresses,
        },
      ]
    : [],
});

t.test('the engine learns where identities run from the reports themselves', async (t) => {
  const engine = new DetectionEngine({ config: { learningSeconds: 0 } });
  // frontend's pod reports from 10.0.1.5; orders sees frontend from there, and from elsewhere.
  engine.add(report(T0, { workload: 'frontend', principal: FRONTEND, address: '10.0.1.5' }));
  engine.add(report(T0, { workload: 'orders' }, ['10.0.1.5']));
  const later = T0 + 300_000;
  engine.add(report(later, { workload: 'frontend', principal: FRONTEND, address: '10.0.1.5' }));
  engine.add(report(later, { workload: 'orders' }, ['10.0.1.5', '198.51.100.7']));
  const alerts = engine.flush().filter((a) => a.detector === 'off-workload');
  t.equal(alerts.length, 1, 'only the window with the foreign address');
  t.match(alerts[0], {
    windowStart: new Date(later).toISOString(),
    evidence: { presentedFrom: ['198.51.100.7'] },
  });
});

t.test(
  'a rolled-out pod stops vouching for its old address an hour after it last reported',
  async (t) => {
    const engine = new DetectionEngine({ config: { learningSeconds: 0 } });
    engine.add(report(T0, { workload: 'frontend', principal: FRONTEND, address: '10.0.1.5' }));
    const later = T0 + 2 * 3600_000;
    engine.add(report(later, { workload: 'frontend', principal: FRONTEND, address: '10.0.2.8' }));
    engine.add(report(later, { workload: 'orders' }, ['10.0.1.5']));
    const alerts = engine.flush().filter((a) => a.detector === 'off-workload');
    t.match(alerts, [{ evidence: { presentedFrom: ['10.0.1.5'], registeredAt: ['10.0.2.8'] } }]);
  },
);

t.test('live, the registry vouches for the addresses of registered sidecars', async (t) => {
  const engine = new DetectionEngine({
    config: { learningSeconds: 0 },
    registered: (principal) => (principal === FRONTEND ? ['127.0.0.1'] : undefined),
  });
  engine.add(report(T0, { workload: 'orders' }, ['127.0.0.1', '127.0.0.2']));
  const alerts = engine.flush().filter((a) => a.detector === 'off-workload');
  t.match(alerts, [{ evidence: { presentedFrom: ['127.0.0.2'] } }]);
});
