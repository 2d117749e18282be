/**
 * Spans and OTel metrics for the requests a sidecar relays, loaded only
 * when the process exports OpenTelemetry (common/telemetry/open-telemetry.ts).
 *
 * Inbound, a SERVER span continues the caller's W3C trace context
 * (`traceparent`, `tracestate`); outbound, a CLIENT span continues the app's.
 * Either way the request sent on carries this span's context in place of
 * what arrived, so one trace runs frontend → its sidecar (client span) →
 * orders' sidecar (server span) → orders. Names and attributes follow the
 * OTel HTTP semantic conventions (`{method} {http.route}`, with
 * `http.route` the policy route's name), plus `postern.*` for what the
 * sidecar decided. Metric attributes are bounded: method (known methods,
 * else `_OTHER`), route name and status code, never the path.
 */
import {
  type Attributes,
  type Histogram,
  metrics,
  propagation,
  ROOT_CONTEXT,
  type Span,
  SpanKind,
  SpanStatusCode,
  type TextMapSetter,
  type Tracer,
  trace,
} from '@opentelemetry/api';
import type { Exchange } from '../filters/filter.ts';
import { type ExchangeObserver, requestBodyBytes } from './exchange-observer.ts';

const INSTRUMENTATION = 'postern-sidecar';
/** The semantic conventions' advice for HTTP durations, in seconds. */
const DURATION_BUCKETS = [
  0.005, 0.01, 0.025, 0.05, 0.075, 0.1, 0.25, 0.5, 0.75, 1, 2.5, 5, 7.5, 10,
];
const KNOWN_METHODS = new Set([
  'GET',
  'HEAD',
  'POST',
  'PUT',
  'DELETE',
  'CONNECT',
  'OPTIONS',
  'TRACE',
  'PATCH',
]);

/** Collects the injected trace context as [name, value, ...], the form upstream headers take. */
const headerListSetter: TextMapSetter<string[]> = {
  set(carrier, key, value) {
    carrier.push(key, value);
  },
};

function methodOf(exchange: Exchange): string {
  const method = exchange.req.method ?? '';
  return KNOWN_METHODS.has(method) ? method : '_OTHER';
}

interface DirectionInstruments {
  readonly duration: Histogram;
  readonly requestSize: Histogram;
  readonly responseSize: Histogram;
}

function instruments(side: 'server' | 'client'): DirectionInstruments {
  const meter = metrics.getMeter(INSTRUMENTATION);
  return {
    duration: meter.createHistogram(`http.${side}.request.duration`, {
      unit: 's',
      description: `Duration of HTTP ${side} requests.`,
      advice: { explicitBucketBoundaries: DURATION_BUCKETS },
    }),
    requestSize: meter.createHistogram(`http.${side}.request.body.size`, {
      unit: 'By',
      description: 'Size of HTTP request bodies (as Content-Length states them).',
    }),
    responseSize: meter.createHistogram(`http.${side}.response.body.size`, {
      unit: 'By',
      description: 'Size of HTTP response bodies relayed.',
    }),
  };
}

/**
 * Starts the exchange's span as a child of the trace context that arrived,
 * and keeps its own context as the headers the request is sent on with.
 */
function startSpan(
  tracer: Tracer,
  exchange: Exchange,
  kind: SpanKind,
  attributes: Attributes,
): void {
  const parent = propagation.extract(ROOT_CONTEXT, exchange.req.headers);
  const span = tracer.startSpan(exchange.req.method ?? 'HTTP', { kind, attributes }, parent);
  exchange.span = span;
  const headers: string[] = [];
  propagation.inject(trace.setSpan(parent, span), headers, headerListSetter);
  exchange.traceHeaders = headers;
}

function record(measure: DirectionInstruments, exchange: Exchange, attributes: Attributes): void {
  measure.duration.record((performance.now() - exchange.startedAt) / 1000, attributes);
  measure.requestSize.record(requestBodyBytes(exchange), attributes);
  measure.responseSize.record(exchange.responseBytes ?? 0, attributes);
}

/** The span's postern.* and HTTP attributes that are known only once the chain has run. */
function decisionAttributes(span: Span, exchange: Exchange): void {
  const decision = exchange.decision;
  if (exchange.principal) span.setAttribute('postern.peer.principal', exchange.principal);
  if (decision) {
    if (decision.policy) span.setAttribute('postern.policy', decision.policy);
    if (decision.route) span.setAttribute('postern.route', decision.route);
    span.setAttribute(
      'postern.authz.decision',
      decision.allowed ? 'allow' : decision.mode === 'audit' ? 'would-deny' : 'deny',
    );
    span.setAttribute('postern.authz.reason', decision.reason);
  }
  if (exchange.rateLimit) span.setAttribute('postern.rate_limit.decision', exchange.rateLimit);
  // The exfiltration guard's verdict is an event too: the moment a caller was stopped.
  if (exchange.exfiltration) {
    span.setAttribute('postern.exfiltration.verdict', exchange.exfiltration);
    span.addEvent('postern.exfiltration', {
      'postern.exfiltration.verdict': exchange.exfiltration,
      'http.response.body.size': exchange.responseBytes ?? 0,
    });
  }
}

/**
 * The inbound observer: a SERVER span per request, the `http.server.*`
 * metrics. `serverAddress` is this workload's service name, as callers
 * address it.
 */
export function inboundTracing(serverAddress: string): ExchangeObserver {
  const tracer = trace.getTracer(INSTRUMENTATION);
  const measure = instruments('server');
  return {
    begin(exchange) {
      startSpan(tracer, exchange, SpanKind.SERVER, {
        'http.request.method': methodOf(exchange),
        'url.scheme': 'https',
        'server.address': serverAddress,
        'network.peer.address': exchange.req.socket.remoteAddress ?? '',
      });
    },
    end(exchange, status) {
      const span = exchange.span;
      const route = exchange.decision?.route;
      const method = methodOf(exchange);
      const attributes: Attributes = {
        'http.request.method': method,
        'http.response.status_code': status,
      };
      if (route) attributes['http.route'] = route;
      record(measure, exchange, attributes);
      if (!span) return;
      if (route) {
        span.updateName(`${method} ${route}`);
        span.setAttribute('http.route', route);
      }
      if (exchange.target) span.setAttribute('url.path', exchange.target.path);
      span.setAttribute('http.response.status_code', status);
      decisionAttributes(span, exchange);
      // A server span is in error for 5xx only: a 4xx is the client's mistake (semantic conventions).
      if (status >= 500) span.setStatus({ code: SpanStatusCode.ERROR });
      span.end();
    },
  };
}

/** The outbound observer: a CLIENT span per request the app sends into the mesh, the `http.client.*` metrics. */
export function outboundTracing(): ExchangeObserver {
  const tracer = trace.getTracer(INSTRUMENTATION);
  const measure = instruments('client');
  return {
    begin(exchange) {
      startSpan(tracer, exchange, SpanKind.CLIENT, { 'http.request.method': methodOf(exchange) });
    },
    end(exchange, status) {
      const span = exchange.span;
      const attributes: Attributes = {
        'http.request.method': methodOf(exchange),
        'http.response.status_code': status,
      };
      const destination = exchange.destination;
      if (destination) attributes['server.address'] = destination.service;
      record(measure, exchange, attributes);
      if (!span) return;
      span.setAttribute('http.response.status_code', status);
      if (destination) {
        span.setAttribute('server.address', destination.service);
        span.setAttribute('network.peer.address', destination.address);
        span.setAttribute('postern.destination.principal', destination.spiffeId);
      } else if (exchange.unknownDestination) {
        span.setAttribute('server.address', exchange.unknownDestination);
        span.setAttribute('postern.egress', 'refused: not in the mesh registry');
      }
      if (exchange.target) span.setAttribute('url.path', exchange.target.path);
      // A client span is in error for every 4xx and 5xx (semantic conventions).
      if (status >= 400) span.setStatus({ code: SpanStatusCode.ERROR });
      span.end();
    },
  };
}
