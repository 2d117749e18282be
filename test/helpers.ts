/**
 * Test fixtures shared by the integration tests: temporary folders, a
 * control plane and sidecars started in-process on port 0, and clients that
 * speak mTLS with certificates from the mesh CA.
 */

import { spawn, spawnSync } from 'node:child_process';
import { openSync } from 'node:fs';
import { mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises';
import { createServer, type IncomingMessage, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Agent, type Dispatcher, request } from 'undici';
import type { CertificateAuthority } from '../certs/authority.ts';
import { generateKeyPair, privateKeyToPem } from '../certs/x509.ts';
import { CHILD_NODE_ARGS, freePort, POSTERN_BIN } from '../cli/processes.ts';
import {
  type ConnectionLimits,
  UPSTREAM_LIMITS,
  type UpstreamLimits,
} from '../common/connection-limits.ts';
import { Logger } from '../common/log.ts';
import type { Alert } from '../common/usage.ts';
import type { CertificateResponse, RegistryEntry } from '../common/wire.ts';
import { workloadDnsNames } from '../control-plane/api/caller.ts';
import {
  type ControlPlane,
  type ControlPlaneOptions,
  startControlPlane,
} from '../control-plane/control-plane.ts';
import { statePaths } from '../control-plane/state.ts';
import { TokenStore } from '../control-plane/tokens.ts';
import type { DataPlaneOptions } from '../sidecar/data-plane.ts';
import { type Gateway, type GatewayOptions, startGateway } from '../sidecar/gateway/gateway.ts';
import type { UnderscoreAction } from '../sidecar/http/headers.ts';
import { OutboundListener } from '../sidecar/listeners/outbound.ts';
import type { AppProbe } from '../sidecar/listeners/status.ts';
import { type LoadReading, OverloadGuard } from '../sidecar/overload.ts';
import { SnapshotState } from '../sidecar/policy/snapshot-state.ts';
import { type Sidecar, startSidecar } from '../sidecar/sidecar.ts';
import { SidecarMetrics } from '../sidecar/telemetry/metrics.ts';

export { freePort };

/** Runs the `postern` binary as its own process, as an operator would, and waits for it. */
export const postern = (...args: string[]) =>
  spawnSync(process.execPath, [...CHILD_NODE_ARGS, POSTERN_BIN, ...args], { encoding: 'utf8' });

/** Logs of processes under test go nowhere unless POSTERN_TEST_LOGS is set. */
export function testLogger(component: string): Logger {
  return new Logger(component, process.env.POSTERN_TEST_LOGS ? {} : { fd: openDevNull() });
}
let devNull: number | undefined;
function openDevNull(): number {
  devNull ??= openSync('/dev/null', 'w');
  return devNull;
}

export async function tempDir(
  t: { teardown(fn: () => unknown): void },
  prefix = 'postern-test-',
): Promise<string> {
  const dir = await mkdtemp(join(tmpdir(), prefix));
  t.teardown(() => rm(dir, { recursive: true, force: true }));
  return dir;
}

export interface PemCredentials {
  readonly cert: string;
  readonly key: string;
  readonly ca: string;
}

/** A client certificate for `spiffeId` from `ca` (what `postern certs issue` mints). */
export async function clientCredentials(
  ca: CertificateAuthority,
  spiffeId: string,
  options: { ttlMs?: number; now?: Date; dnsNames?: string[] } = {},
): Promise<PemCredentials> {
  const keys = await generateKeyPair();
  const cert = await ca.issue(keys.publicKey, {
    uris: [spiffeId],
    ...(options.dnsNames ? { dnsNames: options.dnsNames } : {}),
    ttlMs: options.ttlMs ?? 3600_000,
    ...(options.now ? { now: options.now } : {}),
  });
  return { cert, key: privateKeyToPem(keys.privateKey), ca: ca.bundlePem };
}

/** What a sidecar's SVID is: issued for one workload, whose name its DNS SANs carry (as the CA writes them). */
export function workloadCredentials(
  ca: CertificateAuthority,
  workload: string,
  namespace: string,
  serviceAccount = workload,
): Promise<PemCredentials> {
  return clientCredentials(ca, `spiffe://cluster.local/ns/${namespace}/sa/${serviceAccount}`, {
    dnsNames: workloadDnsNames(workload, namespace),
  });
}

/**
 * An undici Agent that presents `credentials` and verifies the server chain
 * against the mesh CA. Workload certificates name SPIFFE IDs, not hosts, so
 * the hostname check is replaced by a no-op here; the SPIFFE check of the
 * data path itself has its own tests.
 */
export function mtlsAgent(
  credentials: Partial<PemCredentials> & { ca: string },
  /** Where the client connects from (127.0.0.2: another host on loopback). */
  options: { localAddress?: string } = {},
): Agent {
  return new Agent({
    connect: { ...credentials, checkServerIdentity: () => undefined },
    ...options,
  });
}

export interface EchoApp {
  readonly server: Server;
  readonly port: number;
  /** Every request the app received, in order (`complete` says whether its body arrived whole). */
  readonly requests: IncomingMessage[];
}

/** A local app that answers with what it received: method, url, headers, body. */
export async function startEchoApp(t: { teardown(fn: () => unknown): void }): Promise<EchoApp> {
  const requests: IncomingMessage[] = [];
  const server = createServer(async (req, res) => {
    requests.push(req);
    let body = '';
    try {
      for await (const chunk of req) body += chunk;
    } catch {
      // The request was cut off mid-body (its client went, or the proxy refused
      // what followed the head): there is no one left to answer.
      return;
    }
    // ?delay=MS holds the response, to keep a request in flight.
    const delay = Number(new URL(req.url ?? '/', 'http://app').searchParams.get('delay') ?? 0);
    if (delay) {
      // A client that went does not keep the app (and the test) waiting.
      await new Promise<void>((resolve) => {
        const timer = setTimeout(resolve, delay);
        res.once('close', () => {
          clearTimeout(timer);
          resolve();
        });
      });
      if (res.destroyed) return;
    }
    const query = new URL(req.url ?? '/', 'http://app').searchParams;
    // ?size=BYTES answers that many bytes; with &break=1 it sends half of
    // them, chunked, and drops the connection (a relay that ended the
    // response there would hand the client a well-formed, truncated body).
    const size = Number(query.get('size') ?? 0);
    if (size && query.get('break')) {
      res.writeHead(200, { 'content-type': 'application/octet-stream' });
      res.write(Buffer.alloc(size >> 1, 'b'), () => res.destroy());
      return;
    }
    // &stall=MS: half of them, a pause of MS, then the rest (a body that goes quiet).
    const stall = Number(query.get('stall') ?? 0);
    if (size && stall) {
      res.writeHead(200, { 'content-type': 'application/octet-stream', 'content-length': size });
      res.write(Buffer.alloc(size >> 1, 's'));
      await new Promise((resolve) => setTimeout(resolve, stall));
      if (!res.destroyed) res.end(Buffer.alloc(size - (size >> 1), 's'));
      return;
    }
    // &chunked=1: the same bytes in 8 KiB chunks, without a Content-Length,
    // made as the client takes them (a reader that stops holds up the app,
    // not the app's memory).
    if (size && query.get('chunked')) {
      res.writeHead(200, { 'content-type': 'application/octet-stream' });
      const chunk = Buffer.alloc(8192, 'x');
      let sent = 0;
      const pump = () => {
        while (sent < size && !res.destroyed) {
          const part = Math.min(chunk.length, size - sent);
          sent += part;
          if (!res.write(part === chunk.length ? chunk : chunk.subarray(0, part))) {
            res.once('drain', pump);
            return;
          }
        }
        res.end();
      };
      pump();
      return;
    }
    if (size) {
      res.writeHead(200, { 'content-type': 'application/octet-stream', 'content-length': size });
      res.end(Buffer.alloc(size, 'x'));
      return;
    }
    res.writeHead(200, { 'content-type': 'application/json', 'x-app': 'echo' });
    res.end(JSON.stringify({ method: req.method, url: req.url, headers: req.headers, body }));
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  t.teardown(
    () =>
      new Promise((resolve) => {
        server.closeAllConnections();
        server.close(resolve);
      }),
  );
  return { server, port: (server.address() as AddressInfo).port, requests };
}

export interface TestMesh {
  readonly dir: string;
  readonly policiesDir: string;
  readonly stateDir: string;
  readonly controlPlane: ControlPlane;
  readonly controlPlaneUrl: string;
  readonly caFile: string;
  /** A bootstrap token file for the workload; `labels` default to app=<workload>, as `token create` does. */
  tokenFor(
    workload: string,
    namespace: string,
    serviceAccount?: string,
    labels?: Record<string, string>,
  ): Promise<string>;
  startSidecar(options: {
    workload: string;
    namespace: string;
    serviceAccount?: string;
    appPort: number;
    labels?: Record<string, string>;
    adminPort?: number;
    tokenFile?: string;
    /** Dial the control plane here instead (a proxy in between, say). */
    controlPlaneUrl?: string;
    watchIdleTimeoutMs?: number;
    inboundLimits?: Partial<ConnectionLimits>;
    outboundLimits?: Partial<ConnectionLimits>;
    upstreamLimits?: Partial<UpstreamLimits>;
    /** What the overload guard reads (default: the process's own load). */
    loadSource?: { read(): LoadReading };
    /** Default 127.0.0.1. */
    inboundHost?: string;
    /** Default 0 (any); a pod in a fake cluster names its port beforehand. */
    inboundPort?: number;
    /** --headers-with-underscores for this sidecar (default allow). */
    headersWithUnderscores?: UnderscoreAction;
    /** The sidecar's clock (JWT and key-set expiry, entry expiry); default Date.now. */
    now?: () => number;
    /** Usage report window (default 60 s). */
    usageWindowSeconds?: number;
    /** A status listener on 127.0.0.1 at this port (0: any), with these app probes. */
    statusPort?: number;
    appProbes?: ReadonlyMap<string, AppProbe>;
  }): Promise<Sidecar>;
  /** `postern gateway` in this process, as workload `workload` (labels app=<workload>). */
  startGateway(
    options: Omit<GatewayOptions, keyof DataPlaneOptions | 'listenHost' | 'listenPort'> & {
      workload: string;
      namespace: string;
      labels?: Record<string, string>;
      now?: () => number;
    },
  ): Promise<Gateway>;
}

/** A control plane on port 0 with `policies` (YAML text) in its policy folder. */
export async function startTestMesh(
  t: { teardown(fn: () => unknown): void },
  policies: string,
  options: {
    meshDefault?: 'deny' | 'allow-authenticated';
    svidTtlMs?: number;
    keepAliveMs?: number;
    /** Anything else the control plane takes (limits, operators, ...). */
    controlPlane?: Partial<ControlPlaneOptions>;
  } = {},
): Promise<TestMesh> {
  const dir = await tempDir(t);
  const policiesDir = join(dir, 'policies');
  const stateDir = join(dir, 'state');
  await mkdir(policiesDir);
  if (policies) await writeFile(join(policiesDir, 'policies.yaml'), policies);
  const controlPlane = await startControlPlane({
    policiesDir,
    stateDir,
    apiPort: 0,
    host: '127.0.0.1',
    trustDomain: 'cluster.local',
    meshDefault: options.meshDefault ?? 'deny',
    svidTtlMs: options.svidTtlMs ?? 3600_000,
    logger: testLogger('control-plane'),
    ...(options.keepAliveMs ? { keepAliveMs: options.keepAliveMs } : {}),
    ...options.controlPlane,
  });
  t.teardown(() => controlPlane.close());
  const caFile = join(dir, 'ca.pem');
  await writeFile(caFile, controlPlane.ca.bundlePem);
  const tokens = new TokenStore(statePaths(stateDir).tokens, 'cluster.local');
  const mesh: TestMesh = {
    dir,
    policiesDir,
    stateDir,
    controlPlane,
    controlPlaneUrl: `https://127.0.0.1:${controlPlane.apiPort}`,
    caFile,
    async tokenFor(workload, namespace, serviceAccount = workload, labels) {
      const file = join(
        dir,
        `${workload}-${namespace}-${serviceAccount}-${Math.random().toString(36).slice(2)}.token`,
      );
      await writeFile(
        file,
        await tokens.create(workload, namespace, serviceAccount, undefined, labels),
      );
      return file;
    },
    async startSidecar(o) {
      const sidecar = await startSidecar({
        controlPlane: o.controlPlaneUrl ?? mesh.controlPlaneUrl,
        ...(o.watchIdleTimeoutMs ? { watchIdleTimeoutMs: o.watchIdleTimeoutMs } : {}),
        ...(o.inboundLimits ? { inboundLimits: o.inboundLimits } : {}),
        ...(o.outboundLimits ? { outboundLimits: o.outboundLimits } : {}),
        ...(o.upstreamLimits ? { upstreamLimits: o.upstreamLimits } : {}),
        ...(o.loadSource ? { loadSource: o.loadSource } : {}),
        headersWithUnderscores: o.headersWithUnderscores,
        ...(o.now ? { now: o.now } : {}),
        ...(o.usageWindowSeconds ? { usageWindowSeconds: o.usageWindowSeconds } : {}),
        ...(o.statusPort === undefined
          ? {}
          : { statusPort: o.statusPort, statusHost: '127.0.0.1', appProbes: o.appProbes }),
        caFile,
        bootstrapTokenFile:
          o.tokenFile ?? (await mesh.tokenFor(o.workload, o.namespace, o.serviceAccount, o.labels)),
        appPort: o.appPort,
        appHost: '127.0.0.1',
        workload: o.workload,
        namespace: o.namespace,
        serviceAccount: o.serviceAccount ?? o.workload,
        trustDomain: 'cluster.local',
        labels: o.labels ?? { app: o.workload },
        inboundHost: o.inboundHost ?? '127.0.0.1',
        inboundPort: o.inboundPort ?? 0,
        outboundPort: 0,
        adminPort: o.adminPort ?? 0,
        logger: testLogger(`sidecar ${o.workload}`),
      });
      t.teardown(() => sidecar.close());
      return sidecar;
    },
    async startGateway({ workload, namespace, labels, now, ...rest }) {
      const gateway = await startGateway({
        controlPlane: mesh.controlPlaneUrl,
        caFile,
        bootstrapTokenFile: await mesh.tokenFor(workload, namespace, workload, labels),
        workload,
        namespace,
        serviceAccount: workload,
        trustDomain: 'cluster.local',
        labels: labels ?? { app: workload },
        adminPort: 0,
        listenHost: '127.0.0.1',
        listenPort: 0,
        logger: testLogger(`gateway ${workload}`),
        ...(now ? { now } : {}),
        ...rest,
      });
      t.teardown(() => gateway.close());
      return gateway;
    },
  };
  return mesh;
}

/** orders and frontend (namespace shop), each behind its own sidecar in front of `appPort`. */
export async function shopSidecars(
  mesh: TestMesh,
  appPort: number,
): Promise<{ orders: Sidecar; frontend: Sidecar }> {
  const orders = await mesh.startSidecar({ workload: 'orders', namespace: 'shop', appPort });
  const frontend = await mesh.startSidecar({ workload: 'frontend', namespace: 'shop', appPort });
  return { orders, frontend };
}

/** A certificate response, or the API's error. */
export type CertificateAnswer = CertificateResponse & { error?: { code: string; message: string } };

/**
 * POST /v1/certificates at the mesh's control plane, as a sidecar sends it:
 * over a connection that verifies the control plane with the mesh bundle,
 * presenting no client certificate unless `dispatcher` does (a renewal).
 */
export function certificatePoster(
  t: { teardown(fn: () => unknown): void },
  mesh: Pick<TestMesh, 'controlPlane' | 'controlPlaneUrl'>,
): (
  body: unknown,
  dispatcher?: Dispatcher,
) => Promise<{ status: number; body: CertificateAnswer }> {
  const verifying = new Agent({ connect: { ca: mesh.controlPlane.ca.bundlePem } });
  t.teardown(() => verifying.close());
  return async (body, dispatcher = verifying) => {
    const res = await request(`${mesh.controlPlaneUrl}/v1/certificates`, {
      method: 'POST',
      dispatcher,
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify(body),
    });
    return { status: res.statusCode, body: (await res.body.json()) as CertificateAnswer };
  };
}

/** Waits until the sidecar whose admin port is `adminPort` answers ready (a certificate and a snapshot). */
export function untilReady(adminPort: number): Promise<void> {
  return eventually(
    async () => (await request(`http://127.0.0.1:${adminPort}/healthz/ready`)).statusCode === 200,
  );
}

/** Polls `check` every 20 ms until it returns true or `timeoutMs` passes (waiting on another process, not on time itself). */
export async function eventually(
  check: () => Promise<boolean> | boolean,
  timeoutMs = 10_000,
): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    if (await check()) return;
    if (Date.now() > deadline) throw new Error(`condition not met within ${timeoutMs} ms`);
    await new Promise((resolve) => setTimeout(resolve, 20));
  }
}

/** Who the tests call the mesh as: a client from outside any workload, with a certificate of the mesh CA. */
export const TESTER = 'spiffe://cluster.local/ns/default/sa/tester';

/** orders open to every caller on every path: for tests about what happens before or beside policy. */
export const OPEN_ORDERS_POLICY = `
apiVersion: postern.dev/v1alpha1
kind: RoutePolicy
metadata: { name: orders-open, namespace: shop }
spec:
  selector: { matchLabels: { app: orders } }
  routes:
    - name: everything
      match: { path: { prefix: / } }
      allow:
        - principals: ["*"]
`;

/**
 * The orders-api RoutePolicy the integration tests enforce on "orders":
 * /orders and /live (WebSocket) allowed to `allowed`, /admin denied to all.
 */
export function ordersPolicyYaml(allowed: readonly string[]): string {
  const principals = `[${allowed.join(', ')}]`;
  return `
apiVersion: postern.dev/v1alpha1
kind: RoutePolicy
metadata: { name: orders-api, namespace: shop }
spec:
  selector: { matchLabels: { app: orders } }
  routes:
    - name: orders
      match: { path: { prefix: /orders } }
      allow:
        - principals: ${principals}
    - name: live
      match: { path: { exact: /live } }
      allow:
        - principals: ${principals}
    - name: admin
      match: { path: { prefix: /admin } }
      deny:
        - principals: ["*"]
`;
}

export interface SidecarProcess {
  readonly child: import('node:child_process').ChildProcess;
  readonly inboundPort: number;
  readonly outboundPort: number;
  readonly adminPort: number;
  /** Everything the process wrote to stderr (its JSON log lines). */
  log(): string;
}

/**
 * Runs `postern sidecar` as its own process, configured only by POSTERN_*
 * variables as in a pod; resolves once it logs that it listens.
 */
export async function spawnSidecar(
  t: { teardown(fn: () => unknown): void },
  env: Record<string, string>,
): Promise<SidecarProcess> {
  const child = spawn(process.execPath, [...CHILD_NODE_ARGS, POSTERN_BIN, 'sidecar'], {
    env: {
      ...process.env,
      POSTERN_INBOUND_HOST: '127.0.0.1',
      POSTERN_INBOUND_PORT: '0',
      POSTERN_OUTBOUND_PORT: '0',
      POSTERN_ADMIN_PORT: '0',
      ...env,
    },
    stdio: ['ignore', 'ignore', 'pipe'],
  });
  t.teardown(() => child.kill('SIGKILL'));
  let log = '';
  const listening = await new Promise<{
    inboundPort: number;
    outboundPort: number;
    adminPort: number;
  }>((resolve, reject) => {
    child.stderr!.on('data', (chunk) => {
      log += chunk;
      const line = log.split('\n').find((l) => l.includes('"sidecar listening"'));
      if (line) resolve(JSON.parse(line));
    });
    child.once('exit', (code) =>
      reject(new Error(`sidecar exited (${code}) before listening:\n${log}`)),
    );
  });
  return { child, ...listening, log: () => log };
}

/** What a `postern sidecar` process of `workload` (namespace shop, its app on `appPort`) needs to join `mesh`. */
export async function workloadEnv(
  mesh: TestMesh,
  workload: string,
  appPort: number,
): Promise<Record<string, string>> {
  return {
    POSTERN_CONTROL_PLANE: mesh.controlPlaneUrl,
    POSTERN_CA_FILE: mesh.caFile,
    POSTERN_BOOTSTRAP_TOKEN_FILE: await mesh.tokenFor(workload, 'shop'),
    POSTERN_WORKLOAD: workload,
    POSTERN_NAMESPACE: 'shop',
    POSTERN_SERVICE_ACCOUNT: workload,
    POSTERN_APP_PORT: String(appPort),
  };
}

/**
 * An outbound listener for frontend (namespace shop) with an SVID from `ca`
 * and a snapshot whose registry is `registry`, without a control plane: for
 * tests that need the registry to say something a control plane would not.
 */
export async function startOutboundListener(
  t: { teardown(fn: () => unknown): void },
  ca: CertificateAuthority,
  registry: RegistryEntry[],
): Promise<{ port: number; state: SnapshotState }> {
  const own = await clientCredentials(ca, 'spiffe://cluster.local/ns/shop/sa/frontend');
  const svid = {
    spiffeId: 'spiffe://cluster.local/ns/shop/sa/frontend',
    certPem: own.cert,
    keyPem: own.key,
    bundlePem: own.ca,
    notBeforeMs: 0,
    notAfterMs: Date.now() + 3600_000,
  };
  const state = new SnapshotState('shop');
  const applied = state.apply({
    version: '1.1',
    hash: 'h',
    meshDefault: 'deny',
    policies: [],
    registry,
  });
  if (!applied.ok) throw new Error(applied.reason);
  // A guard that never sheds: this listener runs without a data plane.
  const calm = new OverloadGuard(() => {}, { read: () => ({ lagMs: 0, memoryRatio: 0 }) });
  t.teardown(() => calm.close());
  const outbound = new OutboundListener({
    svid,
    state,
    logger: testLogger('outbound'),
    metrics: new SidecarMetrics(),
    observers: [],
    traced: false,
    upstream: UPSTREAM_LIMITS,
    overload: calm,
  });
  const port = await outbound.listen(0, '127.0.0.1');
  t.teardown(() => outbound.close());
  return { port, state };
}

/**
 * The common scene: a control plane with `policies`, the echo app as
 * "orders" behind a ready sidecar, and an mTLS client agent for `caller`.
 */
export async function ordersBehindSidecar(
  t: { teardown(fn: () => unknown): void },
  policies: string,
  caller = TESTER,
  options: { now?: () => number } = {},
): Promise<{
  mesh: TestMesh;
  app: EchoApp;
  sidecar: Sidecar;
  agent: Agent;
  credentials: PemCredentials;
}> {
  const mesh = await startTestMesh(t, policies);
  const app = await startEchoApp(t);
  const sidecar = await mesh.startSidecar({
    workload: 'orders',
    namespace: 'shop',
    appPort: app.port,
    ...(options.now ? { now: options.now } : {}),
  });
  await untilReady(sidecar.adminPort);
  const credentials = await clientCredentials(mesh.controlPlane.ca, caller);
  const agent = mtlsAgent(credentials);
  t.teardown(() => agent.close());
  return { mesh, app, sidecar, agent, credentials };
}

/** What a sidecar's admin /config says (the parts tests read). */
export interface AdminConfig {
  readonly version: string | null;
  readonly certificate?: { readonly notAfter: string };
  readonly snapshot: { readonly hash: string; readonly registry: readonly unknown[] } | null;
  readonly telemetry?: { readonly openTelemetry: boolean; readonly accessLog: string };
  /** The endpoints the sidecar calls, as its balancer sees them. */
  readonly endpoints?: readonly {
    readonly address: string;
    readonly state: 'active' | 'ejected';
    readonly ejections: number;
  }[];
}

/** The sidecar's Prometheus text from its admin port. */
export async function adminMetrics(adminPort: number): Promise<string> {
  return (await request(`http://127.0.0.1:${adminPort}/metrics`)).body.text();
}

export async function adminConfig(adminPort: number): Promise<AdminConfig> {
  return (await (await request(`http://127.0.0.1:${adminPort}/config`)).body.json()) as AdminConfig;
}

/**
 * GET /v1/alerts as `operator` until `until` holds for the list (failing
 * the test after `timeoutMs`); resolves with that list, newest first.
 */
export async function alertsUntil(
  controlPlaneUrl: string,
  operator: Agent,
  until: (alerts: Alert[]) => boolean,
  timeoutMs = 15_000,
): Promise<Alert[]> {
  let alerts: Alert[] = [];
  await eventually(async () => {
    const listed = await request(`${controlPlaneUrl}/v1/alerts`, { dispatcher: operator });
    alerts = ((await listed.body.json()) as { alerts: Alert[] }).alerts;
    return until(alerts);
  }, timeoutMs);
  return alerts;
}
