/** Builders the detector tests share: a caller's usage in a window, and a history of past windows. */
import type { InboundUsage, UsageReport } from '../../common/usage.ts';
import { DEFAULT_DETECTION, type DetectionConfig } from './config.ts';
import { History } from './history.ts';
import type { CallerUsage } from './window.ts';

export const FRONTEND = 'spiffe://cluster.local/ns/shop/sa/frontend';
export const T0 = Date.parse('2026-11-01T00:00:00Z');
export const MINUTES_5 = 300;
export const CONFIG: DetectionConfig = DEFAULT_DETECTION;

export function usage(
  fields: Partial<CallerUsage> & { pods?: Record<string, number> } = {},
): CallerUsage {
  const { pods, ...rest } = fields;
  const responseBytes = rest.responseBytes ?? 0;
  return {
    workload: 'shop/orders',
    principal: FRONTEND,
    route: 'get-order',
    requests: 100,
    requestBytes: 10_000,
    responseBytes,
    distinctResources: 0,
    resourceIds: new Set(),
    byPod: new Map(Object.entries(pods ?? { 'orders-1': responseBytes })),
    addresses: new Set(),
    traceIds: new Set(),
    ...rest,
  };
}

/**
 * A history of `windows` 5-minute windows from T0, each with `bytes(i)`
 * response bytes and `distinct(i)` resource ids; returns it and the start of
 * the window after the last.
 */
export function historyOf(
  windows: number,
  bytes: (i: number) => number,
  distinct: (i: number) => number = () => 0,
  config: DetectionConfig = CONFIG,
): { history: History; nextMs: number } {
  const history = new History(config, T0, MINUTES_5);
  for (let i = 0; i < windows; i++) {
    const at = T0 + i * MINUTES_5 * 1000;
    history.catchUp(at);
    history.record(at, bytes(i), distinct(i));
  }
  return { history, nextMs: T0 + windows * MINUTES_5 * 1000 };
}

/** A daily curve: `low` at night, `high` at 14:00 UTC, smooth in between. */
export const daily = (low: number, high: number) => (i: number) => {
  const hour = ((i * MINUTES_5) / 3600) % 24;
  return Math.round(low + ((high - low) * (1 - Math.cos(((hour - 2) / 24) * 2 * Math.PI))) / 2);
};

export const DAY = 288;
export const MiB = 1024 * 1024;

/** One pod's report for the 5-minute window `index` windows after T0. */
export function report(
  index: number,
  pod: string,
  entries: UsageReport['entries'],
  workload = 'orders',
): UsageReport {
  return {
    source: { workload, namespace: 'shop', pod },
    window: { start: new Date(T0 + index * MINUTES_5 * 1000).toISOString(), seconds: MINUTES_5 },
    entries,
  };
}

export const inbound = (
  principal: string,
  responseBytes: number,
  extra: Partial<InboundUsage> = {},
): InboundUsage => ({
  direction: 'inbound',
  principal,
  route: 'get-order',
  requests: 100,
  requestBytes: 10_000,
  responseBytes,
  ...extra,
});
