/**
 * Rate-limit buckets under a flood of distinct keys: memory and time per
 * take at 10^6 callers (addresses, say), with the sidecar's bound and
 * without it.
 *
 *   npm run bench:rate-limit-memory
 *
 * Each caller sends one request inside one second, as a scan from a million
 * addresses would; the heap is measured after a full GC, before and after.
 * Run in a process of its own (node --expose-gc), so nothing else is in the heap.
 */
import { compileRateLimit } from '../sidecar/rate-limit/limit.ts';
import { DEFAULT_MAX_BUCKETS, LocalBuckets } from '../sidecar/rate-limit/local-buckets.ts';

const gc = (globalThis as { gc?: () => void }).gc;
if (!gc) throw new Error('run with node --expose-gc');

const address = (i: number) => `10.${(i >> 16) & 255}.${(i >> 8) & 255}.${i & 255}`;

function flood(maxBuckets: number, callers: number) {
  const limit = compileRateLimit(
    { requests: 100, per: '1m', key: 'source-ip' },
    'shop/orders-api',
    'list-orders',
    'enforce',
  );
  let evicted = 0;
  const buckets = new LocalBuckets(maxBuckets, () => evicted++);
  gc!();
  const before = process.memoryUsage().heapUsed;
  const started = performance.now();
  for (let i = 0; i < callers; i++) buckets.take(limit, address(i), (i * 1000) / callers);
  const ns = ((performance.now() - started) * 1e6) / callers;
  gc!();
  const mb = (process.memoryUsage().heapUsed - before) / 2 ** 20;
  return { maxBuckets, held: buckets.size, evicted, mb, ns, keep: buckets };
}

const callers = 1_000_000;
const rows = [flood(DEFAULT_MAX_BUCKETS, callers), flood(callers, callers)];
process.stdout.write(
  `| bound | callers | buckets held | evicted | heap MB | ns per take |\n| --- | --- | --- | --- | --- | --- |\n${rows
    .map(
      (r) =>
        `| ${r.maxBuckets.toLocaleString('en')} | ${callers.toLocaleString('en')} | ${r.held.toLocaleString('en')} | ${r.evicted.toLocaleString('en')} | ${r.mb.toFixed(1)} | ${r.ns.toFixed(0)} |`,
    )
    .join('\n')}\n`,
);
