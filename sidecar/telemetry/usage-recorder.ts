/**
 * The usage record of every request (DESIGN.md, "Usage records and
 * alerts"), summed per window in memory and sent to the control plane as
 * one report when the window ends. Recording a request is a Map lookup and
 * a few additions, on the way out of the request path; sending is a timer's
 * work. A report the control plane did not take is kept and sent again, up
 * to MAX_PENDING windows.
 */
import { unmappedAddress } from '../../common/address.ts';
import type { Logger } from '../../common/log.ts';
import type { UsageReport } from '../../common/usage.ts';
import type { ExchangeObserver } from './exchange-observer.ts';
import { requestBodyBytes } from './exchange-observer.ts';

/** Windows kept while the control plane is away; the oldest go first. */
const MAX_PENDING = 30;
/** Entries per window; past it, callers' subjects are dropped to stay within it. */
const MAX_ENTRIES = 5000;
/** Distinct resource ids counted per entry (a count, not a list, past the 64 sampled). */
const MAX_DISTINCT = 10_000;
const SAMPLED_IDS = 64;
/** Caller addresses kept per entry (an identity's pods; more would be the news itself). */
const SAMPLED_ADDRESSES = 16;
/** Trace ids kept per entry, as evidence for an alert. */
const SAMPLED_TRACES = 4;

interface InboundTotals {
  readonly principal: string | undefined;
  readonly subject: string | undefined;
  readonly route: string;
  readonly method: string;
  readonly status: number;
  requests: number;
  requestBytes: number;
  responseBytes: number;
  ids: Set<string> | undefined;
  readonly addresses: Set<string>;
  traceIds: string[] | undefined;
}

export interface UsageRecorderOptions {
  readonly source: { readonly workload: string; readonly namespace: string; readonly pod: string };
  readonly windowSeconds: number;
  readonly now: () => number;
  send(report: UsageReport): Promise<void>;
  readonly logger: Logger;
}

export class UsageRecorder {
  readonly #options: UsageRecorderOptions;
  readonly #windowMs: number;
  #startMs: number;
  #inbound = new Map<string, InboundTotals>();
  /** Egress attempts by `host:port` outside the mesh. */
  #outbound = new Map<string, { requests: number; requestBytes: number; responseBytes: number }>();
  readonly #pending: UsageReport[] = [];
  /** The queue being sent, while it is. */
  #inFlight: Promise<void> | undefined;
  #failing = false;
  readonly #tick: NodeJS.Timeout;

  constructor(options: UsageRecorderOptions) {
    this.#options = options;
    this.#windowMs = options.windowSeconds * 1000;
    this.#startMs = this.#windowOf(options.now());
    // A window ends on the clock, whether or not a request comes to end it.
    this.#tick = setInterval(() => this.#roll(), Math.min(1000, this.#windowMs));
    this.#tick.unref();
  }

  #windowOf(ms: number): number {
    return Math.floor(ms / this.#windowMs) * this.#windowMs;
  }

  /** One inbound request, once answered (forwarded or refused). */
  inbound(
    principal: string | undefined,
    subject: string | undefined,
    route: string,
    method: string,
    status: number,
    requestBytes: number,
    responseBytes: number,
    resourceId: string | undefined,
    /** The address the caller connected from. */
    address: string | undefined,
    /** The request's trace id, when it was traced. */
    traceId: string | undefined,
  ): void {
    this.#roll();
    const full = this.#inbound.size >= MAX_ENTRIES;
    const who = full ? undefined : subject;
    const key = `${principal ?? ''}\n${who ?? ''}\n${route}\n${method}\n${status}`;
    let totals = this.#inbound.get(key);
    if (!totals) {
      totals = {
        principal,
        subject: who,
        route,
        method,
        status,
        requests: 0,
        requestBytes: 0,
        responseBytes: 0,
        ids: undefined,
        addresses: new Set(),
        traceIds: undefined,
      };
      this.#inbound.set(key, totals);
    }
    if (address !== undefined && totals.addresses.size < SAMPLED_ADDRESSES)
      totals.addresses.add(address);
    if (traceId !== undefined) {
      totals.traceIds ??= [];
      if (totals.traceIds.length < SAMPLED_TRACES) totals.traceIds.push(traceId);
    }
    totals.requests++;
    totals.requestBytes += requestBytes;
    totals.responseBytes += responseBytes;
    if (resourceId !== undefined) {
      totals.ids ??= new Set();
      if (totals.ids.size < MAX_DISTINCT) totals.ids.add(resourceId);
    }
  }

  /** One request of the app to a host outside the mesh (refused: egress is not allowed). */
  outbound(destination: string, requestBytes: number, responseBytes: number): void {
    this.#roll();
    let totals = this.#outbound.get(destination);
    if (!totals) {
      if (this.#outbound.size >= MAX_ENTRIES) return;
      totals = { requests: 0, requestBytes: 0, responseBytes: 0 };
      this.#outbound.set(destination, totals);
    }
    totals.requests++;
    totals.requestBytes += requestBytes;
    totals.responseBytes += responseBytes;
  }

  #roll(): void {
    const start = this.#windowOf(this.#options.now());
    if (start === this.#startMs) return;
    this.#seal();
    this.#startMs = start;
  }

  /** Ends the current window: its report joins the queue, and the queue is sent. */
  #seal(): void {
    // Sent while the window's totals are built anew, never awaited here. A
    // window without requests is reported too, empty: it says where this pod
    // runs (the off-workload detector's context), even for a workload that
    // only calls others.
    const inbound = [...this.#inbound.values()].map((t) => ({
      direction: 'inbound' as const,
      ...(t.principal === undefined ? {} : { principal: t.principal }),
      ...(t.subject === undefined ? {} : { subject: t.subject }),
      route: t.route,
      method: t.method,
      status: t.status,
      requests: t.requests,
      requestBytes: t.requestBytes,
      responseBytes: t.responseBytes,
      ...(t.ids
        ? { distinctResources: t.ids.size, resourceIds: [...t.ids].slice(0, SAMPLED_IDS) }
        : {}),
      ...(t.addresses.size ? { addresses: [...t.addresses] } : {}),
      ...(t.traceIds ? { traceIds: t.traceIds } : {}),
    }));
    const outbound = [...this.#outbound].map(([destination, t]) => ({
      direction: 'outbound' as const,
      destination,
      ...t,
    }));
    this.#inbound = new Map();
    this.#outbound = new Map();
    this.#pending.push({
      source: this.#options.source,
      window: {
        start: new Date(this.#startMs).toISOString(),
        seconds: this.#options.windowSeconds,
      },
      entries: [...inbound, ...outbound],
    });
    if (this.#pending.length > MAX_PENDING) this.#pending.shift();
    void this.#sendPending();
  }

  #sendPending(): Promise<void> {
    this.#inFlight ??= this.#drain().finally(() => {
      this.#inFlight = undefined;
    });
    return this.#inFlight;
  }

  async #drain(): Promise<void> {
    while (this.#pending.length) {
      try {
        await this.#options.send(this.#pending[0]!);
      } catch (error) {
        if (!this.#failing) {
          this.#failing = true;
          this.#options.logger.warn('usage report not taken; kept for the next window', {
            error,
            pending: this.#pending.length,
          });
        }
        return;
      }
      this.#pending.shift();
      this.#failing = false;
    }
  }

  /** Sends what the current window holds so far, and stops. */
  async close(): Promise<void> {
    clearInterval(this.#tick);
    this.#seal();
    await this.#inFlight;
  }
}

/** The `index`-th segment of `path` (/orders/17: 1 is "orders", 2 is "17"), without splitting it. */
export function pathSegment(path: string, index: number): string | undefined {
  let start = 0;
  for (let i = 0; i < index; i++) {
    start = path.indexOf('/', start) + 1;
    if (start === 0) return undefined;
  }
  const end = path.indexOf('/', start);
  const segment = end === -1 ? path.slice(start) : path.slice(start, end);
  return segment || undefined;
}

/** What an inbound exchange adds to the usage record, once answered. */
export function usageRecord(usage: UsageRecorder): ExchangeObserver {
  return {
    end(exchange, status) {
      const req = exchange.req;
      const decision = exchange.decision;
      const sub = exchange.claims?.sub;
      const segment = decision?.resourceSegment;
      usage.inbound(
        exchange.principal,
        typeof sub === 'string' ? sub : undefined,
        decision?.route ?? '(no route)',
        req.method ?? '',
        status,
        requestBodyBytes(exchange),
        exchange.responseBytes ?? 0,
        segment !== undefined && exchange.target
          ? pathSegment(exchange.target.path, segment)
          : undefined,
        unmappedAddress(req.socket.remoteAddress),
        exchange.span?.spanContext().traceId,
      );
    },
  };
}

/** What an outbound exchange adds to the usage record: an attempt to leave the mesh. */
export function egressRecord(usage: UsageRecorder): ExchangeObserver {
  return {
    end(exchange) {
      const destination = exchange.unknownDestination;
      if (destination !== undefined) usage.outbound(destination, requestBodyBytes(exchange), 0);
    },
  };
}
