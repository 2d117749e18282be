import { X509Certificate } from 'node:crypto';
import { createSocket, type Socket } from 'node:dgram';
import { lookup } from 'node:dns/promises';
import { readFile } from 'node:fs/promises';
import { hostname, networkInterfaces } from 'node:os';
import { setTimeout as sleep } from 'node:timers/promises';
import { getHeapStatistics } from 'node:v8';
import { type ConnectionLimits, INBOUND_LIMITS } from '../common/connection-limits.ts';
import { closeServer, listen } from '../common/listen.ts';
import { Logger } from '../common/log.ts';
import { formatSpiffeId } from '../common/spiffe.ts';
import { startOpenTelemetry } from '../common/telemetry/open-telemetry.ts';
import { type Snapshot, trustBundleId } from '../common/wire.ts';
import { ControlPlaneClient } from './control-plane-client.ts';
import { ByteBudgets, DEFAULT_MAX_BUDGETS } from './exfiltration/byte-budgets.ts';
import type { UnderscoreAction } from './http/headers.ts';
import { JwtProviders } from './identity/jwt-providers.ts';
import type { Svid } from './identity/svid.ts';
import { describeTrustBundle, snapshotTrustBundle } from './identity/trust-bundle.ts';
import { WorkloadCertificate } from './identity/workload-certificate.ts';
import { createAdminServer } from './listeners/admin.ts';
import { InboundListener } from './listeners/inbound.ts';
import { OutboundListener } from './listeners/outbound.ts';
import { type ApplyResult, SnapshotState } from './policy/snapshot-state.ts';
import { SnapshotWatch } from './policy/snapshot-watch.ts';
import { GlobalLimiter } from './rate-limit/global-limiter.ts';
import { describeRateLimit } from './rate-limit/limit.ts';
import { BUCKET_SWEEP_MS, DEFAULT_MAX_BUCKETS, LocalBuckets } from './rate-limit/local-buckets.ts';
import type { ExchangeObserver } from './telemetry/exchange-observer.ts';
import { SidecarMetrics } from './telemetry/metrics.ts';
import { egressRecord, UsageRecorder, usageRecord } from './telemetry/usage-recorder.ts';

const ADVERTISE_LOOKUP_TIMEOUT_MS = 2_000;

export interface SidecarOptions {
  readonly controlPlane: string;
  readonly caFile: string;
  readonly bootstrapTokenFile: string;
  readonly appPort: number;
  readonly appHost: string;
  readonly workload: string;
  readonly namespace: string;
  readonly serviceAccount: string;
  readonly trustDomain: string;
  readonly labels: Readonly<Record<string, string>>;
  /** host:port peers dial; defaults to the inbound listener's bound address. */
  readonly advertise?: string;
  readonly inboundHost: string;
  readonly inboundPort: number;
  readonly outboundPort: number;
  readonly adminPort: number;
  readonly logger?: Logger;
  readonly now?: () => number;
  /** Connection cap and timeouts of the inbound listener (default INBOUND_LIMITS). */
  readonly inboundLimits?: Partial<ConnectionLimits>;
  /** How long a silent snapshot stream is trusted (see SnapshotWatch); tests shorten it. */
  readonly watchIdleTimeoutMs?: number;
  /** What inbound does with request header names that have underscores (default allow; see http/headers.ts). */
  readonly headersWithUnderscores?: UnderscoreAction;
  /** How long a global rate-limit check may wait for Redis (default DEFAULT_REDIS_TIMEOUT_MS). */
  readonly redisTimeoutMs?: number;
  /** Usage reports: one per window of this length (default 60 s); 0 keeps no usage record. */
  readonly usageWindowSeconds?: number;
  /** This replica's name in usage reports (the pod's; default host name and process id). */
  readonly pod?: string;
  /** Where the access log goes: stdout, stderr or a file (absent: no access log). */
  readonly accessLog?: string;
}

/** The snapshot as /config shows it: a password in the Redis URL is not for the admin port. */
function withoutSecrets(snapshot: Snapshot): Snapshot {
  const redis = snapshot.rateLimit?.redis;
  if (!redis) return snapshot;
  const url = new URL(redis);
  if (!url.password) return snapshot;
  url.password = 'redacted';
  return { ...snapshot, rateLimit: { ...snapshot.rateLimit!, redis: url.href } };
}

/** Redis answers a take in well under a millisecond on a pod network; 50 ms means it is in trouble. */
export const DEFAULT_REDIS_TIMEOUT_MS = 50;

export interface Sidecar {
  readonly inboundPort: number;
  readonly outboundPort: number;
  readonly adminPort: number;
  close(): Promise<void>;
}

/**
 * The host peers should dial when --advertise is not given. A specific bind
 * address is it. A wildcard bind says nothing about where we are reachable,
 * so it is the address this host sends from toward the control plane: the
 * pod IP in a cluster, loopback beside a local control plane, and exactly the
 * address the control plane sees us connect from, which it requires a
 * registration to advertise. (A UDP socket's connect picks the route and
 * sends nothing.)
 */
async function advertisedHost(inboundHost: string, controlPlaneUrl: string): Promise<string> {
  if (inboundHost !== '0.0.0.0' && inboundHost !== '::') return inboundHost;
  const hostname = new URL(controlPlaneUrl).hostname.replace(/^\[|\]$/g, '');
  // 0.0.0.0 listens on IPv4 only, so only an IPv4 route will do; :: takes either.
  const family = inboundHost === '0.0.0.0' ? 4 : 0;
  let socket: Socket | undefined;
  const deadline = new AbortController();
  try {
    const target = await Promise.race([
      lookup(hostname, { family }),
      sleep(ADVERTISE_LOOKUP_TIMEOUT_MS, undefined, { signal: deadline.signal }).then(() => {
        throw new Error('lookup timed out');
      }),
    ]);
    // lookup returns an IP literal as it is, whatever the family asked for.
    if (family === 4 && target.family !== 4)
      throw new Error('the control plane is IPv6-only and the inbound listener IPv4-only');
    const udp = createSocket(target.family === 6 ? 'udp6' : 'udp4');
    socket = udp;
    await new Promise<void>((resolve, reject) => {
      udp.once('error', reject);
      udp.connect(Number(new URL(controlPlaneUrl).port) || 443, target.address, resolve);
    });
    const { address } = udp.address();
    return address.includes(':') ? `[${address}]` : address;
  } catch {
    // No route to the control plane yet (its name does not resolve, say):
    // the first external IPv4 address, which in a pod is the pod IP.
    for (const addresses of Object.values(networkInterfaces())) {
      const external = addresses?.find((a) => a.family === 'IPv4' && !a.internal);
      if (external) return external.address;
    }
    return '127.0.0.1';
  } finally {
    deadline.abort();
    socket?.close();
  }
}

/** What the process holds, for /stats: RSS, live heap, and the heap limit its V8 settings allow. */
function processStats() {
  const mb = (bytes: number) => Math.round(bytes / 1048576);
  const heap = getHeapStatistics();
  return {
    rssMb: mb(process.memoryUsage.rss()),
    heapUsedMb: mb(heap.used_heap_size),
    heapLimitMb: mb(heap.heap_size_limit),
  };
}

/**
 * Starts a sidecar: admin first (so the readiness probe answers "not yet"),
 * then the workload certificate, then the data-plane listeners, then the
 * snapshot watch that registers this workload. Ready once it holds both a
 * certificate and an applied snapshot; until then inbound requests get 503.
 */
export async function startSidecar(options: SidecarOptions): Promise<Sidecar> {
  const logger = options.logger ?? new Logger('sidecar');
  const now = options.now ?? Date.now;
  const spiffeId = formatSpiffeId(options);
  const metrics = new SidecarMetrics();
  const state = new SnapshotState(options.namespace, new JwtProviders({ logger, now }));
  const client = new ControlPlaneClient(
    options.controlPlane,
    await readFile(options.caFile, 'utf8'),
  );
  let inbound: InboundListener | undefined;
  let outbound: OutboundListener | undefined;
  let watch: SnapshotWatch | undefined;

  const certificate = new WorkloadCertificate({
    client,
    spiffeId,
    tokenFile: options.bootstrapTokenFile,
    logger,
    now,
    onRotated: (svid: Svid) => {
      inbound?.setCertificate(svid);
      outbound?.setCertificate(svid);
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
  const admin = createAdminServer({
    notReadyBecause: () => [
      ...(certificate.current ? [] : ['no workload certificate yet']),
      ...(certificate.expired()
        ? ['the workload certificate has expired and could not be renewed']
        : []),
      ...(state.current ? [] : ['no policy snapshot yet']),
      ...(watch?.refusal ? [`the control plane refused the snapshot watch: ${watch.refusal}`] : []),
      ...(inbound ? [] : ['listeners not started']),
    ],
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
        (state.current && outbound?.describeEndpoints(state.current.directory.endpoints)) ?? [],
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
      requests: metrics.requests.toJSON(),
      snapshots: metrics.snapshots.toJSON(),
      handshakeFailures: metrics.handshakeFailures.toJSON(),
    }),
    metrics: () => metrics.render(),
  });
  const adminPort = await listen(admin, options.adminPort, '127.0.0.1');

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
      'postern.role': 'sidecar',
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
  const observers = (direction: 'inbound' | 'outbound'): ExchangeObserver[] => {
    const list: ExchangeObserver[] = [];
    if (tracing)
      list.push(
        direction === 'inbound'
          ? tracing.inboundTracing(options.workload)
          : tracing.outboundTracing(),
      );
    if (usage) list.push(direction === 'inbound' ? usageRecord(usage) : egressRecord(usage));
    if (accessLog) list.push(accessLog.observer(direction));
    return list;
  };

  const closeAll = async () => {
    clearInterval(sweep);
    globalLimits.close();
    await usage?.close();
    certificate.close();
    await watch?.close();
    await Promise.all([inbound?.close(), outbound?.close(), closeServer(admin)]);
    await client.close();
    accessLog?.close();
    // Last: the spans of the requests just drained are in its final batch.
    await openTelemetry?.shutdown();
  };

  const svid = await certificate.obtain();
  if (!svid) throw new Error('sidecar closed before it obtained a certificate');
  inbound = new InboundListener({
    svid,
    appHost: options.appHost,
    appPort: options.appPort,
    headersWithUnderscores: options.headersWithUnderscores,
    state,
    logger,
    metrics,
    now,
    buckets,
    global: globalLimits,
    budgets,
    observers: observers('inbound'),
    traced: tracing !== undefined,
    limits: { ...INBOUND_LIMITS, ...options.inboundLimits },
  });
  outbound = new OutboundListener({
    svid,
    state,
    logger,
    metrics,
    observers: observers('outbound'),
    traced: tracing !== undefined,
    now,
  });
  const inboundPort = await inbound.listen(options.inboundPort, options.inboundHost);
  const outboundPort = await outbound.listen(options.outboundPort, '127.0.0.1');

  const advertise =
    options.advertise ??
    `${await advertisedHost(options.inboundHost, options.controlPlane)}:${inboundPort}`;
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
      if (result.ok && state.current) outbound?.retainOnly(state.current.snapshot.registry);
      // Even a rejected snapshot brings its revocations (see SnapshotState).
      const revoked = state.current?.revoked;
      if (revoked && revoked !== lastRevoked) {
        const changed = new Set(
          [...revoked].filter(([id, upTo]) => lastRevoked?.get(id) !== upTo).map(([id]) => id),
        );
        lastRevoked = revoked;
        if (changed.size) {
          const closed = inbound?.closeRevoked(revoked) ?? 0;
          outbound?.dropIdentities(changed);
          logger.warn('revoked identities: their connections ended', {
            identities: [...changed],
            inboundConnectionsClosed: closed,
          });
        }
      }
    },
  });
  watch.start();
  logger.info('sidecar listening', { spiffeId, inboundPort, outboundPort, adminPort, advertise });

  return { inboundPort, outboundPort, adminPort, close: closeAll };
}
