/**
 * Usage records (DESIGN.md, "Usage records and alerts"): what a sidecar saw
 * in one window, sent as `POST /v1/usage` bodies and kept, one per line, as a
 * usage log that `postern usage replay` reads. The control plane's detectors
 * and the replay both parse them here.
 */
import { type Static, Type } from '@sinclair/typebox';
import { Value } from '@sinclair/typebox/value';

const Count = Type.Integer({ minimum: 0 });

const InboundEntry = Type.Object({
  direction: Type.Literal('inbound'),
  principal: Type.Optional(Type.String({ minLength: 1 })),
  subject: Type.Optional(Type.String()),
  route: Type.String({ minLength: 1 }),
  method: Type.Optional(Type.String()),
  status: Type.Optional(Type.Integer({ minimum: 100, maximum: 599 })),
  requests: Count,
  requestBytes: Count,
  responseBytes: Count,
  distinctResources: Type.Optional(Count),
  resourceIds: Type.Optional(Type.Array(Type.String(), { maxItems: 64 })),
  /** The addresses the caller connected from (a sample): where its identity was presented. */
  addresses: Type.Optional(Type.Array(Type.String({ minLength: 1 }), { maxItems: 16 })),
  /** Trace ids of some of these requests (when the sidecar traces): evidence an alert can link to. */
  traceIds: Type.Optional(Type.Array(Type.String({ pattern: '^[0-9a-f]{32}$' }), { maxItems: 8 })),
});

const OutboundEntry = Type.Object({
  direction: Type.Literal('outbound'),
  destination: Type.String({ minLength: 1 }),
  requests: Count,
  requestBytes: Count,
  responseBytes: Count,
});

export const UsageReportSchema = Type.Object({
  source: Type.Object({
    workload: Type.String({ minLength: 1 }),
    namespace: Type.String({ minLength: 1 }),
    pod: Type.Optional(Type.String()),
    /** The reporting sidecar's SPIFFE ID and pod address: where that identity runs (the control plane states both). */
    principal: Type.Optional(Type.String({ minLength: 1 })),
    address: Type.Optional(Type.String({ minLength: 1 })),
  }),
  window: Type.Object({
    start: Type.String({ minLength: 1 }),
    seconds: Type.Integer({ minimum: 1, maximum: 86_400 }),
  }),
  entries: Type.Array(Type.Union([InboundEntry, OutboundEntry])),
});

export type UsageReport = Static<typeof UsageReportSchema>;
export type InboundUsage = Static<typeof InboundEntry>;
export type OutboundUsage = Static<typeof OutboundEntry>;

/**
 * The caller of requests without a verified identity (mtls PERMISSIVE),
 * as detection counts them and the exfiltration guard caps and blocks them:
 * all as one caller.
 */
export const UNAUTHENTICATED_CALLER = '(unauthenticated)';

/** An alert as the control plane lists it and `postern usage replay` prints it (one JSON line). */
export interface Alert {
  readonly detector:
    | 'volume'
    | 'slow-volume'
    | 'cap'
    | 'enumeration'
    | 'novelty'
    | 'egress'
    | 'spread'
    | 'off-workload';
  readonly severity: 'low' | 'medium' | 'high';
  /** The caller (inbound) or the calling workload's `namespace/name` (egress). */
  readonly principal: string;
  /** `namespace/workload` the traffic went to (inbound). */
  readonly workload?: string;
  readonly route?: string;
  /** host:port outside the mesh (egress). */
  readonly destination?: string;
  /** ISO time of the window that raised it (event time). */
  readonly windowStart: string;
  readonly evidence: Readonly<Record<string, unknown>>;
}

const DATE_TIME = /^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d+)?(Z|[+-]\d{2}:\d{2})$/;

/** A usage report, or the reasons `value` is not one (JSON paths and what was expected). */
export function parseUsageReport(
  value: unknown,
): { ok: true; report: UsageReport } | { ok: false; problems: string[] } {
  const problems = [...Value.Errors(UsageReportSchema, value)]
    // A union reports every member's complaint; the first per path says enough.
    .filter((error, i, all) => all.findIndex((e) => e.path === error.path) === i)
    .map((error) => `${error.path || '(report)'}: ${error.message}`);
  if (problems.length) return { ok: false, problems };
  const report = value as UsageReport;
  if (!DATE_TIME.test(report.window.start) || Number.isNaN(Date.parse(report.window.start))) {
    return { ok: false, problems: ['/window/start: expected an RFC 3339 date-time'] };
  }
  return { ok: true, report };
}
