/**
 * `postern up --traces print`: a small OTLP/HTTP receiver (JSON encoding)
 * the demo's sidecars export to, printing each trace once it has been quiet
 * for a moment, as the tree of hops it was:
 *
 *   trace 4bf92f3577b34da6a3ce929d0e0e4736
 *     frontend  SERVER GET site                 200    4.1 ms  from spiffe://.../tester
 *       frontend  CLIENT GET → orders           200    2.2 ms
 *         orders    SERVER GET list-orders      200    1.0 ms  from spiffe://.../frontend
 *
 * For anything more, point the sidecars at a real collector or Jaeger
 * (`--traces http://localhost:4318`).
 */
import { createServer, type Server } from 'node:http';
import { listen } from '../../common/listen.ts';

/** A trace is printed once no span of it arrived for this long. */
const QUIET_MS = 1500;
const MAX_BODY_BYTES = 4 * 1024 * 1024;

interface Span {
  readonly service: string;
  readonly spanId: string;
  readonly parentSpanId: string;
  readonly name: string;
  readonly kind: number;
  readonly startNs: bigint;
  readonly endNs: bigint;
  readonly attributes: Readonly<Record<string, string | number>>;
}

interface OtlpAttribute {
  readonly key: string;
  readonly value: { stringValue?: string; intValue?: string | number };
}

function attributes(list: readonly OtlpAttribute[] | undefined): Record<string, string | number> {
  const out: Record<string, string | number> = {};
  for (const { key, value } of list ?? []) {
    const v =
      value.stringValue ?? (value.intValue === undefined ? undefined : Number(value.intValue));
    if (v !== undefined) out[key] = v;
  }
  return out;
}

interface OtlpSpan {
  readonly traceId: string;
  readonly spanId: string;
  readonly parentSpanId?: string;
  readonly name: string;
  readonly kind: number;
  readonly startTimeUnixNano?: string | number;
  readonly endTimeUnixNano?: string | number;
  readonly attributes?: readonly OtlpAttribute[];
}

/** An ExportTraceServiceRequest in OTLP's JSON encoding, as far as it is read here. */
interface OtlpTraces {
  readonly resourceSpans?: readonly {
    readonly resource?: { readonly attributes?: readonly OtlpAttribute[] };
    readonly scopeSpans?: readonly { readonly spans?: readonly OtlpSpan[] }[];
  }[];
}

/** The spans of one export request, by trace id. */
export function spansOf(request: OtlpTraces): Map<string, Span[]> {
  const traces = new Map<string, Span[]>();
  for (const resource of request.resourceSpans ?? []) {
    const service = String(attributes(resource.resource?.attributes)['service.name'] ?? '?');
    for (const scope of resource.scopeSpans ?? []) {
      for (const span of scope.spans ?? []) {
        const list = traces.get(span.traceId) ?? [];
        list.push({
          service,
          spanId: span.spanId,
          parentSpanId: span.parentSpanId ?? '',
          name: span.name,
          kind: span.kind,
          startNs: BigInt(span.startTimeUnixNano ?? 0),
          endNs: BigInt(span.endTimeUnixNano ?? 0),
          attributes: attributes(span.attributes),
        });
        traces.set(span.traceId, list);
      }
    }
  }
  return traces;
}

const KIND: Record<number, string> = { 2: 'SERVER', 3: 'CLIENT' };

/** One trace as an indented tree, children under their parents, siblings by start time. */
export function renderTrace(traceId: string, spans: readonly Span[]): string {
  const ids = new Set(spans.map((s) => s.spanId));
  const children = new Map<string, Span[]>();
  for (const span of spans) {
    // A parent outside what we received (the caller's own span) makes a root.
    const parent = ids.has(span.parentSpanId) ? span.parentSpanId : '';
    children.set(parent, [...(children.get(parent) ?? []), span]);
  }
  const lines = [`trace ${traceId}`];
  const walk = (parent: string, depth: number) => {
    const list = (children.get(parent) ?? []).sort((a, b) => (a.startNs < b.startNs ? -1 : 1));
    for (const span of list) {
      const a = span.attributes;
      const what =
        span.kind === 3 && a['server.address']
          ? `${a['http.request.method'] ?? span.name} → ${a['server.address']}`
          : span.name;
      const ms = (Number(span.endNs - span.startNs) / 1e6).toFixed(1);
      const from = a['postern.peer.principal'] ? `  from ${a['postern.peer.principal']}` : '';
      const decision =
        a['postern.authz.decision'] && a['postern.authz.decision'] !== 'allow'
          ? `  ${a['postern.authz.decision']} (${a['postern.authz.reason']})`
          : '';
      lines.push(
        `${'  '.repeat(depth + 1)}${span.service.padEnd(9)} ${(KIND[span.kind] ?? '').padEnd(6)} ${what.padEnd(28)} ${String(a['http.response.status_code'] ?? '').padStart(3)} ${ms.padStart(7)} ms${from}${decision}`,
      );
      walk(span.spanId, depth + 1);
    }
  };
  walk('', 0);
  return `${lines.join('\n')}\n`;
}

export interface TracePrinter {
  readonly url: string;
  close(): Promise<void>;
}

export async function startTracePrinter(write: (text: string) => void): Promise<TracePrinter> {
  const pending = new Map<string, { spans: Span[]; timer: NodeJS.Timeout }>();
  const server: Server = createServer(async (req, res) => {
    let size = 0;
    const chunks: Buffer[] = [];
    for await (const chunk of req as AsyncIterable<Buffer>) {
      size += chunk.length;
      if (size > MAX_BODY_BYTES) {
        res.writeHead(413).end();
        return;
      }
      chunks.push(chunk);
    }
    let body: OtlpTraces;
    try {
      body = JSON.parse(Buffer.concat(chunks).toString('utf8'));
    } catch {
      res.writeHead(400).end();
      return;
    }
    if (req.url === '/v1/traces') {
      for (const [traceId, spans] of spansOf(body)) {
        const entry = pending.get(traceId) ?? { spans: [], timer: undefined as never };
        clearTimeout(entry.timer);
        entry.spans.push(...spans);
        entry.timer = setTimeout(() => {
          pending.delete(traceId);
          write(renderTrace(traceId, entry.spans));
        }, QUIET_MS);
        pending.set(traceId, entry);
      }
    }
    res.writeHead(200, { 'content-type': 'application/json' }).end('{}');
  });
  const port = await listen(server, 0, '127.0.0.1');
  return {
    url: `http://127.0.0.1:${port}`,
    close: () =>
      new Promise((resolve) => {
        for (const { timer } of pending.values()) clearTimeout(timer);
        server.close(() => resolve());
      }),
  };
}
