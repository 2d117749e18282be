/**
 * What recording one request in the sidecar's usage record costs (the
 * part of usage reporting on the request path; sending is a timer's):
 *
 *   npm run bench:usage-record
 *
 * A caller on a route already in this window's record (the common case),
 * and one on a template route whose id is new each time (a set insert too).
 * Median of 5 runs of 1,000,000 records each.
 */
import { Logger } from '../common/log.ts';
import { UsageRecorder } from '../sidecar/telemetry/usage-recorder.ts';

const FRONTEND = 'spiffe://cluster.local/ns/shop/sa/frontend';

function median(values: number[]): number {
  return [...values].sort((a, b) => a - b)[Math.floor(values.length / 2)]!;
}

function time(record: (usage: UsageRecorder, i: number) => void): number {
  const runs: number[] = [];
  for (let run = 0; run < 5; run++) {
    const usage = new UsageRecorder({
      source: { workload: 'orders', namespace: 'shop', pod: 'bench' },
      windowSeconds: 3600,
      now: () => 0,
      send: async () => {},
      logger: new Logger('bench'),
    });
    const started = performance.now();
    for (let i = 0; i < 1_000_000; i++) record(usage, i);
    runs.push(((performance.now() - started) * 1e6) / 1_000_000);
    void usage.close();
  }
  return median(runs);
}

const hot = time((usage) =>
  usage.inbound(
    FRONTEND,
    'alice',
    'list-orders',
    'GET',
    200,
    0,
    1024,
    undefined,
    '10.0.1.5',
    undefined,
  ),
);
const ids = time((usage, i) =>
  usage.inbound(
    FRONTEND,
    'alice',
    'get-order',
    'GET',
    200,
    0,
    1024,
    String(i % 10_000),
    '10.0.1.5',
    undefined,
  ),
);
process.stdout.write(
  `| record | ns per request |\n| --- | --- |\n| a caller and route already in the window | ${hot.toFixed(0)} |\n| a template route, its id in a set of 10,000 | ${ids.toFixed(0)} |\n`,
);
