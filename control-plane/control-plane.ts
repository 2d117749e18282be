import { isIP } from 'node:net';
import type { KubeConfig } from '@kubernetes/client-node';
import { BACKDATE_MS, type CertificateAuthority } from '../certs/authority.ts';
import { generateKeyPair, privateKeyToPem } from '../certs/x509.ts';
import { CONTROL_PLANE_LIMITS, type ConnectionLimits } from '../common/connection-limits.ts';
import { closeServer, listen } from '../common/listen.ts';
import { Logger } from '../common/log.ts';
import { compilePrincipals } from '../common/policy/principals.ts';
import type { RoutePolicy } from '../common/policy/schema.ts';
import { isRevokedCertificate, revocationOf } from '../common/revocation.ts';
import { startOpenTelemetry } from '../common/telemetry/open-telemetry.ts';
import { TLS_POLICY } from '../common/tls-policy.ts';
import type { MeshDefault, Revocation } from '../common/wire.ts';
import { createApiServer } from './api/server.ts';
import { BlockList } from './detection/blocks.ts';
import { policyActions, policyCaps } from './detection/cap.ts';
import { localInput } from './detection/input.ts';
import { LiveDetection } from './detection/live-detection.ts';
import type { SharedDetectionLog } from './detection/shared-log.ts';
import { MeshAuthority } from './mesh-authority.ts';
import { defaultOperators } from './operators.ts';
import { PolicyDirectory, type PolicySet } from './policy-source.ts';
import { RootRotation } from './root-rotation.ts';
import { SnapshotHub } from './snapshot-hub.ts';
import { meshId, nextEpoch, statePaths } from './state.ts';
import { TokenStore } from './tokens.ts';
import { DEFAULT_INJECTION, type InjectionSettings } from './webhooks/injection.ts';
import { startWebhookServer, type WebhookServer } from './webhooks/webhook-server.ts';
import { tokenCredentials, type WorkloadCredentials } from './workload-credentials.ts';

/** Connections the kernel may queue before the control plane accepts them. */
export const API_LISTEN_BACKLOG = 4096;

export interface ControlPlaneOptions {
  /** Where RoutePolicies come from: a folder of YAML files, or the Kubernetes API. */
  readonly policiesDir?: string;
  readonly kubernetes?: KubeConfig;
  readonly stateDir: string;
  readonly apiPort: number;
  readonly host: string;
  readonly trustDomain: string;
  readonly meshDefault: MeshDefault;
  readonly svidTtlMs: number;
  readonly logger?: Logger;
  /** Interval of keep-alive comments on snapshot streams (default 15 s); tests shorten it. */
  readonly keepAliveMs?: number;
  /** Identities that may read operator views such as GET /v1/acks (default: `defaultOperators`). */
  readonly operators?: readonly string[];
  /** Snapshot watches one identity may hold open (default 100). */
  readonly maxWatchesPerIdentity?: number;
  /** Connection cap and timeouts of the API listener (default CONTROL_PLANE_LIMITS). */
  readonly limits?: Partial<ConnectionLimits>;
  /** Least time between two snapshot fan-outs (default 100 ms). */
  readonly minFanOutIntervalMs?: number;
  /** --redis: the Redis sidecars count global rate limits in; without it each replica enforces its share. */
  readonly redisUrl?: string;
  /** How long the exfiltration detectors watch a caller or workload before it may alert (default a day). */
  readonly detectionLearningMs?: number;
  /** Serve the admission webhooks (/inject, /validate) on this port; absent: not served. */
  readonly webhookPort?: number;
  /** What injected pods are given (image, where the control plane is); DEFAULT_INJECTION if absent. */
  readonly injection?: InjectionSettings;
}

export interface ControlPlane {
  readonly apiPort: number;
  /** The admission webhooks' port, when served. */
  readonly webhookPort: number | undefined;
  /** The root that signs now, its `bundlePem` the bundle peers trust now (a root rotation changes both). */
  readonly ca: CertificateAuthority;
  readonly hub: SnapshotHub;
  close(): Promise<void>;
}

const SERVING_TTL_MS = 24 * 3600 * 1000;
const TOKEN_RECHECK_MS = 30_000;

/** The control plane's own serving identity: the names sidecars and operators reach it by. */
async function servingCertificate(
  ca: Pick<CertificateAuthority, 'issue' | 'trustDomain'>,
  host: string,
): Promise<{ cert: string; key: string }> {
  // Bound to one address: sidecars dial that address, so it is a name the certificate must carry.
  const bound = isIP(host) && host !== '0.0.0.0' && host !== '::' ? [host] : [];
  const keys = await generateKeyPair();
  const cert = await ca.issue(keys.publicKey, {
    uris: [`spiffe://${ca.trustDomain}/ns/postern-system/sa/postern-control-plane`],
    dnsNames: [
      'localhost',
      'postern-control-plane',
      'postern-control-plane.postern-system',
      'postern-control-plane.postern-system.svc',
      `postern-control-plane.postern-system.svc.${ca.trustDomain}`,
    ],
    ipAddresses: [...new Set(['127.0.0.1', '::1', ...bound])],
    ttlMs: SERVING_TTL_MS,
  });
  return { cert, key: privateKeyToPem(keys.privateKey) };
}

/** DESIGN.md, Rate limits: without --redis a global limit is each replica's share, and the operator is told so. */
function warnOfGlobalLimitsWithoutRedis(policies: readonly RoutePolicy[], logger: Logger): void {
  const global = policies
    .filter(
      (policy) =>
        policy.spec.rateLimit?.scope === 'global' ||
        policy.spec.routes.some((route) => route.rateLimit?.scope === 'global'),
    )
    .map((policy) => `${policy.metadata.namespace}/${policy.metadata.name}`);
  if (global.length) {
    logger.warn(
      'global rate limits without --redis: each replica enforces its share (requests / replicas)',
      { policies: global },
    );
  }
}

export async function startControlPlane(options: ControlPlaneOptions): Promise<ControlPlane> {
  const logger = options.logger ?? new Logger('control-plane');
  const paths = statePaths(options.stateDir);
  const ca = await MeshAuthority.open(paths.ca, options.trustDomain);
  const epoch = await nextEpoch(options.stateDir);
  // Names this mesh's keys in a Redis other meshes may share (rate limits, detection).
  const mesh = await meshId(options.stateDir);
  const hub = new SnapshotHub(epoch, options.meshDefault, {
    ...(options.maxWatchesPerIdentity
      ? { maxWatchesPerIdentity: options.maxWatchesPerIdentity }
      : {}),
    ...(options.minFanOutIntervalMs !== undefined
      ? { minFanOutIntervalMs: options.minFanOutIntervalMs }
      : {}),
    ...(options.redisUrl ? { redisUrl: options.redisUrl, redisKeyPrefix: `postern:${mesh}:` } : {}),
  });
  // OTel only when OTEL_* names an exporter: alerts then also go out as log records.
  const openTelemetry = await startOpenTelemetry({
    serviceName: 'postern-control-plane',
    attributes: { 'postern.role': 'control-plane' },
  });
  // Routes' exfiltration caps and actions follow the policies; the detectors read them per window.
  let caps = policyCaps([]);
  let actions = policyActions([]);
  // With --redis, replicas share detection's input through a Redis stream (shared-log.ts).
  let shared: SharedDetectionLog | undefined;
  // Callers an alert blocked, kept across restarts, in their workload's snapshots.
  const blocks = await BlockList.open(paths.blocks, (byWorkload) => hub.setBlocks(byWorkload));
  const alertTelemetry = openTelemetry
    ? (await import('./detection/alert-telemetry.ts')).alertTelemetry()
    : undefined;
  const detection = new LiveDetection({
    caps: (workload, route) => caps(workload, route),
    registered: (principal) => hub.addressesOf(principal),
    logger,
    now: Date.now,
    onAlert: (alert) => {
      // Every replica raises the same alerts (shared-log.ts); one of them exports each.
      if (alertTelemetry) {
        if (!shared) alertTelemetry(alert);
        else
          void shared
            .claimAlert(alert)
            .then((mine) => mine && alertTelemetry(alert))
            .catch(() => alertTelemetry(alert));
      }
      if (!alert.workload || !alert.route) return;
      const blocked = blocks.consider(alert, actions(alert.workload, alert.route));
      if (blocked)
        logger.warn('caller blocked on route after an exfiltration alert', { ...blocked });
    },
    ...(options.detectionLearningMs !== undefined
      ? { config: { learningSeconds: options.detectionLearningMs / 1000 } }
      : {}),
  });
  const onChange = ({ policies: next, httpRoutes }: PolicySet) => {
    if (!options.redisUrl) warnOfGlobalLimitsWithoutRedis(next, logger);
    caps = policyCaps(next);
    actions = policyActions(next);
    hub.setPolicies(next, httpRoutes);
  };
  if (options.redisUrl) {
    const { SharedDetectionLog } = await import('./detection/shared-log.ts');
    shared = new SharedDetectionLog({
      url: options.redisUrl,
      key: `postern:${mesh}:detection`,
      apply: (entry) =>
        entry.kind === 'report' ? detection.report(entry.report) : blocks.clear(entry.target),
      logger,
    });
    shared.start();
  }
  const detectionInput = shared ? shared.input(blocks) : localInput(detection, blocks);
  // The Kubernetes client is loaded only in cluster mode: it costs every
  // other process tens of megabytes it would never use.
  const policies = options.kubernetes
    ? new (await import('./kubernetes-source.ts')).KubernetesPolicySource(
        options.kubernetes,
        logger,
        onChange,
        {
          lastValidFile: paths.kubernetesLastValid,
          // An HTTPRoute's parent is ours when that gateway holds a snapshot watch here.
          serves: (parent) => hub.hasWorkload(parent.namespace, parent.name),
        },
      )
    : new PolicyDirectory(options.policiesDir!, logger, onChange);
  hub.setTrustBundle(ca.bundlePem);
  // The first set goes the way every later one does: the detectors' caps and
  // actions came only with the first change after start until this did.
  onChange(await policies.start());

  const tokens = new TokenStore(paths.tokens, ca.trustDomain);
  // `postern token revoke` (another process) rewrites the token file: end the
  // revoked identity's watches at once, which also drops its registrations.
  // Peers refuse a revoked identity's certificates issued before its
  // revocation, for as long as any of them can still be valid.
  // Revocations stay until an operator removes them from the state folder:
  // the list is short, and a certificate minted with `certs issue --ttl`
  // may outlive any SVID lifetime the control plane knows.
  const revocations = (): Revocation[] =>
    [...tokens.revocationsNow()].map(([spiffeId, at]) => revocationOf(spiffeId, at, BACKDATE_MS));
  const revokedUpTo = (spiffeId: string): number | undefined => {
    const at = tokens.revocationsNow().get(spiffeId);
    return at === undefined ? undefined : at - BACKDATE_MS;
  };
  // In a cluster, pods are credentials too (ServiceAccount tokens), and
  // their coming and going changes who may renew and watch.
  let credentials: WorkloadCredentials = tokenCredentials(tokens);
  const credentialsChanged = () => {
    hub.setRevocations(revocations());
    const ended = hub.endWhere(
      (s) =>
        !credentials.stillBound(s.workload, s.spiffeId) ||
        isRevokedCertificate(s.certificateNotBeforeMs, revokedUpTo(s.spiffeId)),
    );
    if (ended) logger.warn('revoked identities: snapshot watches ended', { ended });
  };
  await tokens.refresh();
  const cluster = options.kubernetes
    ? await (await import('./kubernetes/cluster.ts')).startCluster(options.kubernetes, {
        logger,
        trustDomain: ca.trustDomain,
        tokens,
        hub,
        caConfigMap: (options.injection ?? DEFAULT_INJECTION).caConfigMap,
        servesWebhooks: options.webhookPort !== undefined,
        onPodsChange: credentialsChanged,
      })
    : undefined;
  if (cluster) credentials = cluster.credentials;
  credentialsChanged();
  tokens.watch(credentialsChanged, (error) =>
    logger.error('watching the token file failed', { error }),
  );
  // Where the folder cannot be watched (some network filesystems) a stat
  // every half minute still ends revoked watches; with a watch it finds
  // nothing new and costs one stat.
  const recheck = setInterval(() => {
    tokens
      .refresh()
      .then(credentialsChanged)
      .catch((error: unknown) => logger.error('reading the token files failed', { error }));
  }, TOKEN_RECHECK_MS);
  recheck.unref();
  const rotation = new RootRotation({
    authority: ca,
    unconfirmed: (bundleId) => hub.unconfirmed(bundleId),
    leafLifetimeMs: options.svidTtlMs,
    logger,
  });
  const keepAliveMs = options.keepAliveMs ?? 15_000;
  let serving = await servingCertificate(ca, options.host);
  let webhooks: WebhookServer | undefined;
  const server = createApiServer({
    ca,
    rotation,
    credentials,
    hub,
    logger,
    svidTtlMs: options.svidTtlMs,
    revokedUpTo,
    operators: compilePrincipals(options.operators ?? defaultOperators(ca.trustDomain)),
    keepAliveMs,
    stalledStreamMs: Math.max(60_000, 4 * keepAliveMs),
    detection,
    blocks,
    detectionInput,
    tls: serving,
    limits: { ...CONTROL_PLANE_LIMITS, ...options.limits },
  });
  // New handshakes get the serving certificate and the client roots of the
  // moment; open connections keep theirs.
  const applyTls = () => server.setSecureContext({ ...serving, ca: ca.bundlePem, ...TLS_POLICY });
  const renewServing = () =>
    servingCertificate(ca, options.host).then(
      (tls) => {
        serving = tls;
        applyTls();
        webhooks?.setCertificate(tls);
      },
      (error: unknown) => logger.error('serving certificate renewal failed', { error }),
    );
  // Renew the serving certificate at half life.
  const renew = setInterval(renewServing, SERVING_TTL_MS / 2);
  renew.unref();
  // A rotation step changes what sidecars trust (sent in their snapshots,
  // and checked on their client certificates here), and at the switch who
  // signs: the control plane's own certificate then comes from the new root,
  // which every sidecar has confirmed by then.
  ca.onChange(({ signerChanged }) => {
    hub.setTrustBundle(ca.bundlePem);
    void cluster?.setTrustBundle(ca.bundlePem);
    if (signerChanged) void renewServing();
    else applyTls();
  });
  // A rotation under way when the control plane stopped goes on from here.
  void rotation.check();

  // Every sidecar reconnects at once after a restart: 5,000 simulated ones
  // overflowed Node's default accept queue of 511 (load-tests, control-plane scale).
  const apiPort = await listen(server, options.apiPort, options.host, API_LISTEN_BACKLOG);
  webhooks =
    options.webhookPort === undefined
      ? undefined
      : await startWebhookServer({
          port: options.webhookPort,
          host: options.host,
          tls: serving,
          logger,
          deps: {
            settings: options.injection ?? DEFAULT_INJECTION,
            // Injection asks whether a pod's namespace opted in; only the cluster knows.
            namespaceLabels: (name) => cluster?.namespaceLabels(name) ?? {},
            onDecision: (entry) => logger.info('admission: pod', entry),
            servesGateway: (parent) => hub.hasWorkload(parent.namespace, parent.name),
          },
        });
  // The trust bundle injected sidecars mount, in every namespace, and the
  // webhooks' caBundle (the mesh bundle verifies their serving certificate).
  await cluster?.setTrustBundle(ca.bundlePem);
  logger.info('control plane listening', {
    apiPort,
    trustDomain: ca.trustDomain,
    version: hub.version,
    rootRotation: ca.roots.phase,
  });

  return {
    apiPort,
    webhookPort: webhooks?.port,
    get ca() {
      return ca.current;
    },
    hub,
    async close() {
      rotation.close();
      clearInterval(renew);
      clearInterval(recheck);
      tokens.close();
      hub.close();
      detection.close();
      await shared?.close();
      await blocks.saved();
      await policies.close();
      await cluster?.close();
      await webhooks?.close();
      await closeServer(server);
      await openTelemetry?.shutdown();
    },
  };
}
