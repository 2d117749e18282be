/**
 * A real OTLP/HTTP receiver for tests: it takes what OpenTelemetry
 * exporters POST to /v1/traces, /v1/metrics and /v1/logs in the JSON
 * encoding (OTEL_EXPORTER_OTLP_PROTOCOL=http/json), answers as a collector
 * does, and decodes spans, metric points and log records for assertions.
 */
import { createServer } from 'node:http';
import { listen } from '../common/listen.ts';

interface OtlpValue {
  readonly stringValue?: string;
  readonly intValue?: string | number;
  readonly doubleValue?: number;
  readonly boolValue?: boolean;
}
interface OtlpAttribute {
  readonly key: string;
  readonly value: OtlpValue;
}
type Attributes = Record<string, string | number | boolean | undefined>;
// biome-ignore lint/suspicious/noExplicitAny: OTLP JSON, walked field by field where it is read.
type Json = any;

function attributesOf(list: readonly OtlpAttribute[] | undefined): Attributes {
  const out: Attributes = {};
  for (const { key, value } of list ?? []) {
    out[key] =
      value.stringValue ??
      (value.intValue !== undefined ? Number(value.intValue) : undefined) ??
      value.doubleValue ??
      value.boolValue;
  }
  return out;
}

export interface ReceivedSpan {
  readonly service: string;
  readonly traceId: string;
  readonly spanId: string;
  readonly parentSpanId: string;
  readonly name: string;
  /** 2 SERVER, 3 CLIENT (OTLP's SpanKind). */
  readonly kind: number;
  readonly attributes: Attributes;
  readonly events: readonly { readonly name: string; readonly attributes: Attributes }[];
  readonly status: { readonly code?: number };
}

export interface ReceivedPoint {
  readonly service: string;
  readonly metric: string;
  readonly unit: string;
  readonly attributes: Attributes;
  /** Histogram points: how many values were recorded. */
  readonly count?: number;
  readonly sum?: number;
  /** Sum and gauge points. */
  readonly value?: number;
}

export interface ReceivedLog {
  readonly service: string;
  readonly body: unknown;
  readonly severityText?: string;
  readonly attributes: Attributes;
}

export interface OtlpReceiver {
  readonly url: string;
  spans(): ReceivedSpan[];
  points(metric: string): ReceivedPoint[];
  logs(): ReceivedLog[];
  /** Content types the exporters sent: proves the encoding under test. */
  readonly contentTypes: Set<string>;
}

export async function startOtlpReceiver(t: {
  teardown(fn: () => unknown): void;
}): Promise<OtlpReceiver> {
  const bodies: Record<string, unknown[]> = { traces: [], metrics: [], logs: [] };
  const contentTypes = new Set<string>();
  const server = createServer(async (req, res) => {
    let text = '';
    for await (const chunk of req) text += chunk;
    const signal = req.url?.replace(/^\/v1\//, '') ?? '';
    if (req.method !== 'POST' || !(signal in bodies)) {
      res.writeHead(404).end();
      return;
    }
    contentTypes.add(String(req.headers['content-type']));
    bodies[signal]!.push(JSON.parse(text));
    res.writeHead(200, { 'content-type': 'application/json' }).end('{}');
  });
  const port = await listen(server, 0, '127.0.0.1');
  t.teardown(() => new Promise((resolve) => server.close(resolve)));

  const each = (signal: string, key: string, scopeKey: string, itemsKey: string): Json[] =>
    (bodies[signal] as Json[]).flatMap((body) =>
      (body[key] ?? []).flatMap((resource: Json) =>
        (resource[scopeKey] ?? []).flatMap((scope: Json) =>
          (scope[itemsKey] ?? []).map((item: Json) => ({
            service: String(attributesOf(resource.resource?.attributes)['service.name']),
            item,
          })),
        ),
      ),
    );

  return {
    url: `http://127.0.0.1:${port}`,
    contentTypes,
    spans: () =>
      each('traces', 'resourceSpans', 'scopeSpans', 'spans').map(({ service, item }) => ({
        service,
        traceId: item.traceId,
        spanId: item.spanId,
        parentSpanId: item.parentSpanId ?? '',
        name: item.name,
        kind: item.kind,
        attributes: attributesOf(item.attributes),
        events: (item.events ?? []).map((e: { name: string; attributes?: OtlpAttribute[] }) => ({
          name: e.name,
          attributes: attributesOf(e.attributes),
        })),
        status: item.status ?? {},
      })),
    points: (metric) =>
      each('metrics', 'resourceMetrics', 'scopeMetrics', 'metrics')
        .filter(({ item }) => item.name === metric)
        .flatMap(({ service, item }) => {
          const data = item.histogram ?? item.sum ?? item.gauge;
          return (data?.dataPoints ?? []).map((point: Json) => ({
            service,
            metric: item.name,
            unit: item.unit,
            attributes: attributesOf(point.attributes),
            ...(point.count !== undefined ? { count: Number(point.count), sum: point.sum } : {}),
            ...(point.asInt !== undefined || point.asDouble !== undefined
              ? { value: Number(point.asInt ?? point.asDouble) }
              : {}),
          }));
        }),
    logs: () =>
      each('logs', 'resourceLogs', 'scopeLogs', 'logRecords').map(({ service, item }) => ({
        service,
        body: item.body?.stringValue ?? item.body,
        severityText: item.severityText,
        attributes: attributesOf(item.attributes),
      })),
  };
}
