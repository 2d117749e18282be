/**
 * What the opt-in telemetry costs a sidecar per request, in CPU, without the
 * rest of the path around it (`npm run bench` gives the whole path's figures,
 * noisier):
 *
 *   npm run bench:telemetry
 *
 * Each case runs 20,000 exchanges through the observers a sidecar would
 * install, in batches of 100 with the event loop turning between them (so
 * that asynchronous writes and OTLP exports happen, and count), and reports
 * the process CPU per exchange, median of 5 runs:
 * - the access log, to a file;
 * - OpenTelemetry export (the SDK started from OTEL_* as a sidecar does, to
 *   an OTLP/HTTP sink in this process that takes and drops each export):
 *   spans and metrics for every request, and with 10% of traces sampled.
 * OpenTelemetry is one SDK per process, so each OTel case runs in a child
 * process of its own.
 */
import { spawnSync } from 'node:child_process';
import { mkdtemp } from 'node:fs/promises';
import { createServer, type IncomingMessage } from 'node:http';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { listen } from '../common/listen.ts';
import type { Exchange } from '../sidecar/filters/filter.ts';
import { decision } from '../sidecar/policy/decision.ts';
import type { ExchangeObserver } from '../sidecar/telemetry/exchange-observer.ts';

const EXCHANGES = 20_000;
const BATCH = 100;

function median(values: number[]): number {
  return [...values].sort((a, b) => a - b)[Math.floor(values.length / 2)]!;
}

const DECISION = decision({
  allowed: true,
  reason: 'allow-rule-matched',
  mode: 'enforce',
  policy: 'shop/orders-api',
  route: 'list-orders',
  rule: 'allow[0]',
});

/** BENCH_NEW_TRACES=1: requests arrive without a trace context, so the sidecar's sampler decides. */
const HEADERS = process.env.BENCH_NEW_TRACES
  ? { host: 'orders' }
  : { host: 'orders', traceparent: '00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01' };

function exchange(): Exchange {
  const req = {
    method: 'GET',
    url: '/orders',
    headers: HEADERS,
    socket: { remoteAddress: '10.0.1.5' },
  } as unknown as IncomingMessage;
  return {
    req,
    startedAt: performance.now(),
    target: { path: '/orders', search: '' } as Exchange['target'],
    principal: 'spiffe://cluster.local/ns/shop/sa/frontend',
    decision: DECISION,
    responseBytes: 1024,
  };
}

/** CPU microseconds per exchange through `observers`, median of 5 runs. */
async function cpuPerExchange(observers: readonly ExchangeObserver[]): Promise<number> {
  const runs: number[] = [];
  for (let run = 0; run < 5; run++) {
    const before = process.cpuUsage();
    for (let done = 0; done < EXCHANGES; done += BATCH) {
      for (let i = 0; i < BATCH; i++) {
        const x = exchange();
        for (const observer of observers) observer.begin?.(x);
        for (const observer of observers) observer.end(x, 200);
      }
      await new Promise((resolve) => setImmediate(resolve));
    }
    // What the batch processors and writers still hold is part of the cost.
    await new Promise((resolve) => setTimeout(resolve, 200));
    const used = process.cpuUsage(before);
    runs.push((used.user + used.system) / EXCHANGES);
  }
  return median(runs);
}

/** In a child: the OTel case named by argv, printed as one number. */
async function otelCase(): Promise<void> {
  const sink = createServer((req: IncomingMessage, res) => {
    req.resume();
    req.on('end', () => res.writeHead(200).end());
  });
  const port = await listen(sink, 0, '127.0.0.1');
  process.env.OTEL_EXPORTER_OTLP_ENDPOINT = `http://127.0.0.1:${port}`;
  process.env.OTEL_METRIC_EXPORT_INTERVAL = '1000';
  const { startOpenTelemetry } = await import('../common/telemetry/open-telemetry.ts');
  const sdk = await startOpenTelemetry({ serviceName: 'bench', attributes: {} });
  const { inboundTracing } = await import('../sidecar/telemetry/otel-exchange.ts');
  const cpu = await cpuPerExchange([inboundTracing('orders')]);
  process.stdout.write(`${cpu}\n`);
  await sdk?.shutdown();
  sink.close();
}

function inChild(env: Record<string, string>): number {
  const child = spawnSync(process.execPath, [import.meta.filename, '--otel-case'], {
    env: { ...process.env, ...env },
    encoding: 'utf8',
  });
  if (child.status !== 0) throw new Error(child.stderr);
  return Number(child.stdout.trim());
}

async function main(): Promise<void> {
  const none = await cpuPerExchange([]);
  const { openAccessLog } = await import('../sidecar/telemetry/access-log.ts');
  const log = openAccessLog(join(await mkdtemp(join(tmpdir(), 'postern-log-')), 'access.log'), {
    workload: 'orders',
    pod: 'bench',
  });
  const accessLog = await cpuPerExchange([log.observer('inbound')]);
  log.close();
  const everyTrace = inChild({});
  const sampled = inChild({
    OTEL_TRACES_SAMPLER: 'parentbased_traceidratio',
    OTEL_TRACES_SAMPLER_ARG: '0.1',
    BENCH_NEW_TRACES: '1',
  });
  const metricsOnly = inChild({ OTEL_TRACES_EXPORTER: 'none' });
  const row = (what: string, us: number) => `| ${what} | ${(us - none).toFixed(1)} |`;
  process.stdout.write(
    [
      '| telemetry on the path | CPU µs per request (over none) |',
      '| --- | --- |',
      row('access log (pino, to a file)', accessLog),
      row('OTel export: every request traced (a sampled caller), metrics', everyTrace),
      row('OTel export: requests that start traces, 10% sampled, metrics', sampled),
      row('OTel export: metrics only (OTEL_TRACES_EXPORTER=none)', metricsOnly),
      '',
    ].join('\n'),
  );
}

if (process.argv.includes('--otel-case')) await otelCase();
else await main();
