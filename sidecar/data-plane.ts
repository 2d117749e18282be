import { X509Certificate } from 'node:crypto';
import { readFile } from 'node:fs/promises';
import { hostname } from 'node:os';
import { getHeapStatistics } from 'node:v8';
import { UPSTREAM_LIMITS, type UpstreamLimits } from '../common/connection-limits.ts';
import { closeServer, listen } from '../common/listen.ts';
import { Logger } from '../common/log.ts';
import { formatSpiffeId } from '../common/spiffe.ts';
import { startOpenTelemetry } from '../common/telemetry/open-telemetry.ts';
import { type Snapshot, trustBundleId } from '../common/wire.ts';
import { ControlPlaneClient } from './control-plane-client.ts';
import { ByteBudgets, DEFAULT_MAX_BUDGETS } from './exfiltration/byte-budgets.ts';
import { JwtProviders } from './identity/jwt-providers.ts';
import type { Svid } from './identity/svid.ts';
import { describeTrustBundle, snapshotTrustBundle } from './identity/trust-bundle.ts';
import { WorkloadCertificate } from './identity/workload-certificate.ts';
import { createAdminServer } from './listeners/admin.ts';
import { type AppProbe, createStatusServer } from './listeners/status.ts';
import { containerMemoryLimit, type LoadReading, OverloadGuard, processLoad } from './overload.ts';
import { type ApplyResult, SnapshotState } from './policy/snapshot-state.ts';
import { SnapshotWatch } from './policy/snapshot-watch.ts';
import { GlobalLimiter } from './rate-limit/global-limiter.ts';
import { describeRateLimit } from './rate-limit/limit.ts';
import { BUCKET_SWEEP_MS, DEFAULT_MAX_BUCKETS, LocalBuckets } from './rate-limit/local-buckets.ts';
import type { ExchangeObserver } from './telemetry/exchange-observer.ts';
import { SidecarMetrics } from './telemetry/metrics.ts';
import { egressRecord, UsageRecorder, usageRecord } from './telemetry/usage-recorder.ts';
import type { Endpoint } from './upstream/service-directory.ts';

/**
 * The data plane every role runs (DESIGN.md: the gateway is another
 * listener of the same data plane): the workload certificate, the snapshot
 * watch and its compiled policy, rate-limit buckets and byte budgets kept
 * across snapshots, telemetry, and the admin port. A role (sidecar.ts,
 * gateway.ts) brings only its listeners, built from these parts.
 */
export interface DataPlaneOptions {
  readonly controlPlane: string;
  readonly caFile: string;
  readonly bootstrapTokenFile: string;
  readonly workload: string;
  readonly namespace: string;
  readonly serviceAccount: string;
  readonly trustDomain: string;
  readonly labels: Readonly<Record<string, string>>;
  readonly adminPort: number;
  readonly logger?: Logger;
  readonly now?: () => number;
  /** How long a silent snapshot stream is trusted (see SnapshotWatch); tests shorten it. */
  readonly watchIdleTimeoutMs?: number;
  /** How long a global rate-limit check may wait for Redis (default DEFAULT_REDIS_TIMEOUT_MS). */
  readonly redisTimeoutMs?: number;
  /** Usage reports: one per window of this length (default 60 s); 0 keeps no usage record. */
  readonly usageWindowSeconds?: number;
  /** This replica's name in usage reports (the pod's; default host name and process id). */
  readonly pod?: string;
  /** Where the access log goes: stdout, stderr or a file (absent: no access log). */
  readonly accessLog?: string;
  /** The status listener (15021 in a pod): readiness and the app's rewritten probes, on `statusHost`; absent: none. */
  readonly statusPort?: number;
  readonly statusHost?: string;
  /** The app's original HTTP probes, by the status path that now stands for each. */
  readonly appProbes?: ReadonlyMap<string, AppProbe>;
  /** How long to wait on the app and peer sidecars (default UPSTREAM_LIMITS). */
  readonly upstreamLimits?: Partial<UpstreamLimits>;
  /** Bytes the process may hold before it sheds new requests (default: the container's memory limit). */
  readonly memoryLimit?: number;
  /** What the overload guard reads (default: this process's event-loop delay and memory); tests stand in for it. */
  readonly loadSource?: { read(): LoadReading; stop?(): void };
}

/** Which side of a listener a request comes from: the mesh (inbound), the app (outbound) or outside clients (gateway). */
export type Direction = 'inbound' | 'outbound' | 'gateway';

/** What the data plane hands a role's listeners. */
export interface DataPlaneParts {
  readonly svid: Svid;
  readonly state: SnapshotState;
  readonly logger: Logger;
  readonly metrics: SidecarMetrics;
  readonly now: () => number;
  /** Where local rate limits count (kept across snapshots). */
  readonly buckets: LocalBuckets;
  /** Where global rate limits count (Redis, or this replica's share). */
  readonly global: GlobalLimiter;
  /** What each caller read of capped routes (kept across snapshots). */
  readonly budgets: ByteBudgets;
  /** Requests are traced: the trace context sent on is this process's span's. */
  readonly traced: boolean;
  /** How long to wait on the app and peer sidecars. */
  readonly upstream: UpstreamLimits;
  /** Whether the process sheds new requests now (its loop lags or its heap is nearly full). */
  readonly overload: OverloadGuard;
  /** What records each request of a direction (usage, access log, tracing). */
  observers(direction: Direction): ExchangeObserver[];
}

/** What one listener is built from: the parts, with the observers of its direction. */
export interface ListenerParts extends Omit<DataPlaneParts, 'observers'> {
  readonly observers: readonly ExchangeObserver[];
}

/** A role's listeners, as the data plane drives them. */
export interface Listeners {
  /** Bound ports by name (inbound, outbound, gateway). */
  readonly ports: Readonly<Record<string, number>>;
  /** host:port where peers reach this workload in the mesh; undefined when it takes no mesh traffic. */
  readonly advertise: string | undefined;
  /** A renewed SVID (or trust bundle): new handshakes use it. */
  setCertificate(svid: Svid): void;
  /** After a snapshot applied: connections to endpoints that left the registry go. */
  retainOnly(endpoints: readonly Endpoint[]): void;
  /** For /config: the endpoints this workload calls and their balancer state. */
  describeEndpoints(endpoints: readonly Endpoint[]): object[];
  /** Identities revoked: end their open connections; returns how many inbound ones closed. */
  revoke(revoked: ReadonlyMap<string, number>, changed: ReadonlySet<string>): number;
  /** Stops accepting and lets open requests finish within `graceMs`; resolves with the connections cut at the end. */
  drain(graceMs: number): Promise<number>;
  close(): Promise<void>;
}

export interface DataPlane {
  readonly adminPort: number;
  readonly ports: Readonly<Record<string, number>>;
  /**
   * A graceful stop (SIGTERM): readiness turns false, the listeners stop
   * accepting, open requests finish within `graceMs` (keep-alive clients
   * are sent Connection: close, idle connections closed), then close().
   */
  shutdown(graceMs: number): Promise<void>;
  close(): Promise<void>;
}

/** How long a stopping data plane lets open requests finish (within Kubernetes' 30 s grace period). */
export const DEFAULT_DRAIN_MS = 20_000;

/** Redis answers a take in well under a millisecond on a pod network; 50 ms means it is in trouble. */
export const DEFAULT_REDIS_TIMEOUT_MS = 50;

/** The snapshot as /config shows it: a password in the Redis URL is not for the admin port. */
function withoutSecrets(snapshot: Snapshot): Snapshot {
  const redis = snapshot.rateLimit?.redis;
  if (!redis) return snapshot;
  const url = new URL(redis);
  if (!url.password) return snapshot;
  url.password = 'redacted';
  return { ...snapshot, rateLimit: { ...snapshot.rateLimit!, redis: url.href } };
}

/** What the process holds, for /stats: RSS, live heap, the heap limit its V8 settings allow, and Buffers outside the heap. */
function processStats() {
  const mb = (bytes: number) => Math.round(bytes / 1048576);
  const heap = getHeapStatistics();
  const memory = process.memoryUsage();
  return {
    rssMb: mb(memory.rss),
    heapUsedMb: mb(heap.used_heap_size),
    heapLimitMb: mb(heap.heap_size_limit),
    // Buffers live outside the heap: what connections hold in flight shows here.
    externalMb: mb(memory.external),
  };
}

/**
 * Starts the data plane of one role: admin first (so the readiness probe
 * answers "not yet"), then the workload certificate, then the role's
 * listeners, then the snapshot watch that registers this workload. Ready
 * once it holds both a certificate and an applied snapshot; until then
 * requests get 503.
 */
export async function startDataPlane(
  options: DataPlaneOptions,
  role: 'sidecar' | 'gateway',
  startListeners: (parts: DataPlaneParts) => Promise<Listeners>,
): Promise<DataPlane> {
  const logger = options.logger ?? new Logger(role);
  const now = options.now ?? Date.now;
  const spiffeId = formatSpiffeId(options);
  const metrics = new SidecarMetrics();
  const overload = new OverloadGuard(
    (shedding, reading) => {
      const facts = {
        eventLoopLagMs: Math.round(reading.lagMs),
        memoryRatio: Math.round(reading.memoryRatio * 100) / 100,
      };
      if (shedding) logger.warn('overloaded: shedding new requests with 503', facts);
      else logger.info('load back to normal: taking requests again', facts);
    },
    options.loadSource ?? processLoad(options.memoryLimit ?? containerMemoryLimit()),
  );
  const state = new SnapshotState(options.namespace, new JwtProviders({ logger, now }));
  const client = new ControlPlaneClient(
    options.controlPlane,
    await readFile(options.caFile, 'utf8'),
  );
  let listeners: Listeners | undefined;
  let watch: SnapshotWatch | undefined;

  const certificate = new WorkloadCertificate({
    client,
    spiffeId,
    tokenFile: options.bootstrapTokenFile,
    logger,
    now,
    onRotated: (svid: Svid) => {
      listeners?.setCertificate(svid);
    },
  });
  // Local rate-limit buckets live as long as the process, across snapshots:
  // a policy edit elsewhere must not hand every caller a full bucket.
  const buckets = new LocalBuckets(DEFAULT_MAX_BUCKETS, () => metrics.rateLimitEvictions.inc());
  // Likewise what callers read of capped routes.
  const budgets = new ByteBudgets(DEFAULT_MAX_BUDGETS, () => metrics.budgetEvictions.inc());
  const sweep = setInterval(() => {
    buckets.sweep(now());
    budgets.sweep(now());
  }, BUCKET_SWEEP_MS);
  sweep.unref();
  const globalLimits = new GlobalLimiter({
    buckets,
    logger,
    metrics,
    now,
    commandTimeoutMs: options.redisTimeoutMs ?? DEFAULT_REDIS_TIMEOUT_MS,
  });

  // Each good part of a snapshot takes effect, and any bad part nacks it: the
  // trust bundle is installed even when the policies cannot be (as
  // revocations are, see SnapshotState), so a root rotation never waits on a
  // policy this sidecar rejects; a bundle that is not one leaves the current
  // bundle in force.
  const applySnapshot = (candidate: unknown): ApplyResult => {
    const result = state.apply(candidate);
    const bundle = snapshotTrustBundle(candidate);
    if (!bundle.ok)
      return {
        ok: false,
        reason: result.ok ? bundle.reason : `${result.reason}; ${bundle.reason}`,
      };
    if (bundle.pem !== undefined) certificate.setTrustBundle(bundle.pem);
    globalLimits.configure(
      state.current?.snapshot.rateLimit?.redis,
      state.current?.snapshot.rateLimit?.keyPrefix,
    );
    return result;
  };

  let telemetry: { openTelemetry: boolean; accessLog: string } | undefined;
  let draining = false;
  const notReadyBecause = () => [
    ...(draining ? ['shutting down: draining open requests'] : []),
    ...(certificate.current ? [] : ['no workload certificate yet']),
    ...(certificate.expired()
      ? ['the workload certificate has expired and could not be renewed']
      : []),
    ...(state.current ? [] : ['no policy snapshot yet']),
    ...(watch?.refusal ? [`the control plane refused the snapshot watch: ${watch.refusal}`] : []),
    ...(listeners ? [] : ['listeners not started']),
  ];
  const admin = createAdminServer({
    notReadyBecause,
    config: () => ({
      spiffeId,
      workload: options.workload,
      certificate: certificate.current && {
        notAfter: new Date(certificate.current.notAfterMs).toISOString(),
        issuer: new X509Certificate(certificate.current.certPem).issuer.replaceAll('\n', ', '),
      },
      // The roots peers are verified with (two while the mesh root rotates).
      trustBundle: certificate.current && describeTrustBundle(certificate.current.bundlePem),
      version: state.current?.snapshot.version ?? null,
      // The routes as compiled, in the precedence order the sidecar applies them.
      routes:
        state.current?.policy.table.routes.map((route) => ({
          policy: route.policy,
          route: route.name,
          mode: route.mode,
          ...(route.rateLimit ? { rateLimit: describeRateLimit(route.rateLimit) } : {}),
        })) ?? [],
      // The endpoints this sidecar calls, as its balancer sees them (active or ejected, load, failures).
      endpoints:
        (state.current && listeners?.describeEndpoints(state.current.directory.endpoints)) ?? [],
      rateLimitBuckets: buckets.size,
      // What this sidecar records beyond metrics and usage: OTel export is on only when OTEL_* named an exporter.
      telemetry,
      globalRateLimits: state.current?.snapshot.rateLimit && {
        replicas: state.current.snapshot.rateLimit.replicas,
        countedIn: globalLimits.mode,
      },
      snapshot: state.current ? withoutSecrets(state.current.snapshot) : null,
    }),
    stats: () => ({
      process: processStats(),
      overload: overload.describe(),
      requests: metrics.requests.toJSON(),
      snapshots: metrics.snapshots.toJSON(),
      handshakeFailures: metrics.handshakeFailures.toJSON(),
    }),
    metrics: () => metrics.render(),
  });
  const adminPort = await listen(admin, options.adminPort, '127.0.0.1');
  const status =
    options.statusPort === undefined
      ? undefined
      : createStatusServer(notReadyBecause, options.appProbes ?? new Map());
  const statusPort = status
    ? await listen(status, options.statusPort!, options.statusHost ?? '0.0.0.0')
    : undefined;

  // Every request's usage record, summed per window and sent to the control plane.
  const pod = options.pod ?? `${hostname()}-${process.pid}`;
  const usageWindowSeconds = options.usageWindowSeconds ?? 60;
  const usage =
    usageWindowSeconds > 0
      ? new UsageRecorder({
          source: { workload: options.workload, namespace: options.namespace, pod },
          windowSeconds: usageWindowSeconds,
          now,
          send: (report) => client.reportUsage(report),
          logger,
        })
      : undefined;

  // Telemetry loads only what is switched on: the OTel SDK when OTEL_* names an
  // exporter, pino when there is an access log (see their modules).
  const openTelemetry = await startOpenTelemetry({
    serviceName: options.workload,
    attributes: {
      'k8s.namespace.name': options.namespace,
      'k8s.pod.name': pod,
      'postern.role': role,
    },
  });
  const tracing = openTelemetry ? await import('./telemetry/otel-exchange.ts') : undefined;
  const accessLog = options.accessLog
    ? (await import('./telemetry/access-log.ts')).openAccessLog(options.accessLog, {
        workload: options.workload,
        pod,
      })
    : undefined;
  telemetry = { openTelemetry: !!openTelemetry, accessLog: options.accessLog ?? 'off' };
  // The gateway's requests are recorded as inbound ones are: outside clients are its callers.
  const observers = (direction: Direction): ExchangeObserver[] => {
    const list: ExchangeObserver[] = [];
    if (tracing)
      list.push(
        direction === 'outbound'
          ? tracing.outboundTracing()
          : tracing.inboundTracing(options.workload),
      );
    if (usage) list.push(direction === 'outbound' ? egressRecord(usage) : usageRecord(usage));
    if (accessLog) list.push(accessLog.observer(direction));
    return list;
  };

  const closeAll = async () => {
    clearInterval(sweep);
    overload.close();
    globalLimits.close();
    await usage?.close();
    certificate.close();
    await watch?.close();
    await Promise.all([
      listeners?.close(),
      closeServer(admin),
      status ? closeServer(status) : undefined,
    ]);
    await client.close();
    accessLog?.close();
    // Last: the spans of the requests just drained are in its final batch.
    await openTelemetry?.shutdown();
  };

  const svid = await certificate.obtain();
  if (!svid) throw new Error('sidecar closed before it obtained a certificate');
  listeners = await startListeners({
    svid,
    state,
    logger,
    metrics,
    now,
    buckets,
    global: globalLimits,
    budgets,
    traced: tracing !== undefined,
    upstream: { ...UPSTREAM_LIMITS, ...options.upstreamLimits },
    overload,
    observers,
  });
  const advertise = listeners.advertise;
  let lastRevoked: ReadonlyMap<string, number> | undefined;
  watch = new SnapshotWatch({
    client,
    logger,
    registration: {
      workload: options.workload,
      labels: options.labels,
      address: advertise,
    },
    apply: applySnapshot,
    trustBundle: () => certificate.current && trustBundleId(certificate.current.bundlePem),
    ...(options.watchIdleTimeoutMs ? { idleTimeoutMs: options.watchIdleTimeoutMs } : {}),
    onResult: (result) => {
      metrics.snapshots.inc(result.ok ? 'applied' : 'rejected');
      if (result.ok && state.current) listeners?.retainOnly(state.current.snapshot.registry);
      // Even a rejected snapshot brings its revocations (see SnapshotState).
      const revoked = state.current?.revoked;
      if (revoked && revoked !== lastRevoked) {
        const changed = new Set(
          [...revoked].filter(([id, upTo]) => lastRevoked?.get(id) !== upTo).map(([id]) => id),
        );
        lastRevoked = revoked;
        if (changed.size) {
          const closed = listeners?.revoke(revoked, changed) ?? 0;
          logger.warn('revoked identities: their connections ended', {
            identities: [...changed],
            inboundConnectionsClosed: closed,
          });
        }
      }
    },
  });
  watch.start();
  logger.info(`${role} listening`, { spiffeId, ...listeners.ports, adminPort, advertise });
  return {
    adminPort,
    ports: { ...listeners.ports, ...(statusPort === undefined ? {} : { statusPort }) },
    async shutdown(graceMs) {
      draining = true;
      logger.info('shutting down: draining open requests', { graceMs });
      const cut = await listeners!.drain(graceMs);
      if (cut) logger.warn('drain grace period over: connections cut', { connections: cut });
      await closeAll();
    },
    close: closeAll,
  };
}
