/**
 * The processes the harness measures, each started the way a user runs it:
 * the app, a control plane, a Postern sidecar in front of the app (mTLS
 * inbound), nginx configured for the same mTLS termination and keep-alive
 * proxying, and the Node floor (node-floor.ts) doing the same in bare Node.
 * Proxies are pinned to PROXY_CPU; the app, the control plane and the load
 * generator to LOAD_CPU, the same for every target.
 */

import { execFileSync } from 'node:child_process';
import { mkdir, readFile, writeFile } from 'node:fs/promises';
import { availableParallelism } from 'node:os';
import { join, relative, resolve } from 'node:path';
import { build } from 'esbuild';
import { Agent, request } from 'undici';
import { BUNDLE_OPTIONS } from '../../build/bundle.ts';
import { CA_FILES, CertificateAuthority } from '../../certs/authority.ts';
import { generateKeyPair, privateKeyToPem } from '../../certs/x509.ts';
import {
  type Child,
  freePort,
  POSTERN_BIN,
  startChild,
  startControlPlaneProcess,
  startProcess,
  stopChild,
  waitUntilHealthy,
} from '../../cli/processes.ts';
import { writeFileAtomic } from '../../common/private-file.ts';
import { statePaths } from '../../control-plane/state.ts';
import { TokenStore } from '../../control-plane/tokens.ts';
import { routes } from '../decision-time.ts';
import { BENCH_HEADERS, BENCH_ISSUER, BENCH_JWKS, BENCH_SCOPE } from './bench-token.ts';
import type { BenchResults } from './budget.ts';

export const PROXY_CPU = 0;
export const LOAD_CPU = 1;

const TESTER = 'spiffe://cluster.local/ns/default/sa/tester';
const FRONTEND = 'spiffe://cluster.local/ns/shop/sa/frontend';
const GATEWAY = 'spiffe://cluster.local/ns/shop/sa/edge';
const APP = resolve(import.meta.dirname, 'app.ts');
const NODE_FLOOR = resolve(import.meta.dirname, 'node-floor.ts');

/** Where a load goes, and which processes to charge CPU and memory to. */
export interface Target {
  readonly name: string;
  readonly url: string;
  /** The Host header to send (the mesh hop routes by it). */
  readonly host?: string;
  readonly clientCertDir?: string;
  /** The proxies on the path (CPU and RSS are read from /proc/PID); none for the app itself. */
  readonly proxies?: readonly Child[];
}

export interface Bench {
  readonly dir: string;
  readonly appPort: number;
  readonly direct: Target;
  /** A client certificate from the mesh CA, accepted by the sidecar's policy and by nginx. */
  readonly clientCertDir: string;
  /** orders' sidecar in front of the app: one inbound hop. */
  startSidecar(): Promise<Target>;
  /** frontend's sidecar too, called on its outbound port: app → outbound → inbound → app. Needs startSidecar first. */
  startMeshHop(): Promise<Target>;
  /** `postern gateway` in front of orders' sidecar: client → gateway (TLS) → orders' inbound (mTLS) → app. Needs startSidecar first. */
  startGateway(): Promise<Target>;
  startNginx(): Promise<Target>;
  /** The Node floor (node-floor.ts): what Node itself costs on the same hop. */
  startNodeFloor(): Promise<Target>;
  /**
   * Saves `policy` as orders' policy file (the control plane watches the
   * folder) and resolves once orders' sidecar holds it (its /config shows a
   * new snapshot version with the policy's routes), with the seconds that took.
   * Needs startSidecar first.
   */
  applyPolicy(policy: BenchPolicy): Promise<number>;
  stop(): Promise<void>;
}

/**
 * The RoutePolicy on orders. `routes: 0` is "mTLS only", the smallest policy
 * Postern runs (it has no switch to turn authorization off: a workload no
 * policy selects falls to the mesh default, deny): no routes and
 * `defaultAction: allow`, so any caller the mTLS handshake admitted gets
 * through. `routes: N` (N >= 1) is the bench policy: the tester and frontend
 * may GET /orders, plus N - 1 routes that never match it (decision-time.ts's
 * mix of exact, template and prefix routes), so the route table grows while
 * the request's route stays the same.
 */
export interface BenchPolicy {
  readonly routes: number;
  /**
   * The orders route asks for a verified JWT with scope orders.read (a
   * provider with its keys inline: bench-token.ts). Every request to every
   * target carries the token (BENCH_HEADERS), so without this the token
   * only passes through: JWT off, on the same bytes.
   */
  readonly jwt?: boolean;
  /**
   * The orders route's rate limit, by principal, never reached (a million a
   * second), so every request takes a token: counted in the sidecar
   * (local) or in the bench's Redis (global).
   */
  readonly rateLimit?: 'local' | 'global';
}

/** The quick run's policy, and the full run's baseline: one route, its caller's JWT verified (every feature the path has on, as DESIGN.md's budget asks). */
export const BENCH_POLICY: BenchPolicy = Object.freeze({ routes: 1, jwt: true });

/** The policy file for `policy` (JSON, which is YAML). */
export function policyDocument(policy: BenchPolicy): string {
  const spec =
    policy.routes === 0
      ? { defaultAction: 'allow', routes: [] }
      : {
          ...(policy.jwt
            ? {
                jwt: [
                  {
                    issuer: BENCH_ISSUER,
                    jwks: BENCH_JWKS,
                    audiences: ['orders'],
                    algorithms: ['ES256'],
                    typ: 'at+jwt',
                  },
                ],
              }
            : {}),
          routes: [
            {
              name: 'orders',
              match: { methods: ['GET'], path: { prefix: '/orders' } },
              allow: [
                {
                  principals: [TESTER, FRONTEND, GATEWAY],
                  ...(policy.jwt ? { jwt: { claims: { scope: BENCH_SCOPE } } } : {}),
                },
              ],
              ...(policy.rateLimit
                ? { rateLimit: { requests: 1_000_000, per: '1s', scope: policy.rateLimit } }
                : {}),
            },
            ...routes(policy.routes - 1),
          ],
        };
  return JSON.stringify({
    apiVersion: 'postern.dev/v1alpha1',
    kind: 'RoutePolicy',
    metadata: { name: 'orders-api', namespace: 'shop' },
    spec: { selector: { matchLabels: { app: 'orders' } }, ...spec },
  });
}

/**
 * The gateway's policy and route for the bench: the same JWT check as
 * orders' route (every request carries the bench token), one HTTPRoute
 * sending /orders to orders.
 */
function gatewayDocuments(): string {
  const policy = {
    apiVersion: 'postern.dev/v1alpha1',
    kind: 'RoutePolicy',
    metadata: { name: 'edge', namespace: 'shop' },
    spec: {
      selector: { matchLabels: { app: 'edge' } },
      // The token goes on: orders' own policy verifies it again, as a backend that trusts no one would.
      jwt: [
        {
          issuer: BENCH_ISSUER,
          jwks: BENCH_JWKS,
          audiences: ['orders'],
          algorithms: ['ES256'],
          typ: 'at+jwt',
          forwardOriginalToken: true,
        },
      ],
      routes: [
        {
          name: 'orders',
          match: { methods: ['GET'], path: { prefix: '/orders' } },
          allow: [{ jwt: { claims: { scope: BENCH_SCOPE } } }],
        },
      ],
    },
  };
  const route = {
    apiVersion: 'gateway.networking.k8s.io/v1',
    kind: 'HTTPRoute',
    metadata: { name: 'orders', namespace: 'shop' },
    spec: {
      parentRefs: [{ name: 'edge' }],
      rules: [
        {
          matches: [{ path: { type: 'PathPrefix', value: '/orders' } }],
          backendRefs: [{ name: 'orders', port: 80 }],
        },
      ],
    },
  };
  return `${JSON.stringify(policy)}\n---\n${JSON.stringify(route)}\n`;
}

/** nginx from Debian when it is missing (the reference hop); false when it cannot be had. */
export function nginxAvailable(say: (line: string) => void): boolean {
  const has = () => {
    try {
      execFileSync('nginx', ['-v'], { stdio: 'ignore' });
      return true;
    } catch {
      return false;
    }
  };
  if (has()) return true;
  say('nginx is missing; installing nginx-light with apt-get');
  try {
    execFileSync('sh', ['-c', 'apt-get update -qq && apt-get install -y -qq nginx-light'], {
      stdio: 'ignore',
    });
  } catch {}
  return has();
}

/** The machine and pinning a run reports, with the `postern` its sidecars ran. */
export function machine(sidecarBin: string | undefined): BenchResults['machine'] {
  return {
    cpus: availableParallelism(),
    node: process.versions.node,
    pinning: `proxies on core ${PROXY_CPU}; app, control plane and load generator on core ${LOAD_CPU}`,
    binary: relative(process.cwd(), sidecarBin ?? POSTERN_BIN),
  };
}

/** Issues a certificate from `ca` into `dir` as cert.pem, key.pem (0600) and bundle.pem. */
async function issueInto(
  ca: CertificateAuthority,
  dir: string,
  names: { uris?: string[]; dnsNames?: string[]; ipAddresses?: string[] },
): Promise<void> {
  await mkdir(dir, { recursive: true });
  const keys = await generateKeyPair();
  const cert = await ca.issue(keys.publicKey, { uris: [], ...names, ttlMs: 24 * 3600_000 });
  await writeFileAtomic(join(dir, 'key.pem'), privateKeyToPem(keys.privateKey));
  await writeFileAtomic(join(dir, 'cert.pem'), cert, 0o644);
  await writeFileAtomic(join(dir, 'bundle.pem'), ca.bundlePem, 0o644);
}

interface RunningSidecar {
  readonly child: Child;
  readonly inboundPort: number;
  readonly outboundPort: number;
  readonly adminPort: number;
}

export async function startBench(
  dir: string,
  options: {
    responseBytes: number;
    /** The policy on orders at start (BENCH_POLICY unless told). */
    policy?: BenchPolicy;
    /**
     * Node flags for the sidecar process (experiments: heap settings,
     * profiling); the Node floor gets them too, so that it stays Node with
     * the sidecar's settings.
     */
    sidecarNodeArgs?: readonly string[];
    /** Another build of the `postern` binary to run the sidecar from (experiments: a bundle). */
    sidecarBin?: string;
    /** More environment for the sidecars (features switched on by variables: an access log, OTEL_* export). */
    sidecarEnv?: Readonly<Record<string, string>>;
  },
): Promise<Bench> {
  const children: Child[] = [];
  const stop = async () => {
    for (const child of children.reverse()) await stopChild(child, 2_000);
  };
  try {
    const stateDir = join(dir, 'state');
    const policiesDir = join(dir, 'policies');
    await mkdir(policiesDir, { recursive: true });
    await writeFile(
      join(policiesDir, 'orders.yaml'),
      policyDocument(options.policy ?? BENCH_POLICY),
    );
    const ca = await CertificateAuthority.create('cluster.local');
    await ca.writeTo(statePaths(stateDir).ca);
    const clientCertDir = join(dir, 'tester');
    await issueInto(ca, clientCertDir, { uris: [TESTER] });

    const appPort = await freePort();
    const app = startChild(
      'app',
      [APP, String(appPort)],
      { BENCH_RESPONSE_BYTES: String(options.responseBytes) },
      join(dir, 'app.log'),
      LOAD_CPU,
    );
    children.push(app);
    await waitUntilHealthy(`http://127.0.0.1:${appPort}/`, app, 10_000);

    // Global rate limits count here: Redis on the load core, as a Redis on
    // another node would be, nothing persisted.
    const redisPort = await freePort();
    const redis = startProcess(
      'redis',
      'redis-server',
      ['--port', String(redisPort), '--bind', '127.0.0.1', '--save', '', '--appendonly', 'no'],
      {},
      join(dir, 'redis.log'),
      LOAD_CPU,
    );
    children.push(redis);

    const apiPort = await freePort();
    const controlPlane = startControlPlaneProcess({
      policiesDir,
      stateDir,
      apiPort,
      logFile: join(dir, 'control-plane.log'),
      cpu: LOAD_CPU,
      env: { POSTERN_REDIS_URL: `redis://127.0.0.1:${redisPort}` },
    });
    children.push(controlPlane);
    const verifying = new Agent({ connect: { ca: ca.bundlePem } });
    await waitUntilHealthy(
      `https://127.0.0.1:${apiPort}/v1/trust-bundle`,
      controlPlane,
      20_000,
      verifying,
    );
    await verifying.close();
    const tokens = new TokenStore(statePaths(stateDir).tokens, ca.trustDomain);
    let ordersSidecar: RunningSidecar | undefined;

    /** `postern sidecar` for `workload` in front of the app, pinned to PROXY_CPU, once it is ready. */
    const sidecarFor = async (workload: string): Promise<RunningSidecar> => {
      const tokenFile = join(dir, `${workload}.token`);
      await writeFileAtomic(tokenFile, await tokens.create(workload, 'shop', workload));
      const [inboundPort, outboundPort, adminPort] = [
        await freePort(),
        await freePort(),
        await freePort(),
      ];
      const child = startChild(
        `sidecar ${workload}`,
        [...(options.sidecarNodeArgs ?? []), options.sidecarBin ?? POSTERN_BIN, 'sidecar'],
        {
          POSTERN_CONTROL_PLANE: `https://127.0.0.1:${apiPort}`,
          POSTERN_CA_FILE: join(statePaths(stateDir).ca, CA_FILES.bundle),
          POSTERN_BOOTSTRAP_TOKEN_FILE: tokenFile,
          POSTERN_APP_PORT: String(appPort),
          POSTERN_WORKLOAD: workload,
          POSTERN_NAMESPACE: 'shop',
          POSTERN_SERVICE_ACCOUNT: workload,
          // What the token binds (token create default); given so that a sidecar
          // from before labels were bound (--sidecar-bin) is selected too.
          POSTERN_LABELS: `app=${workload}`,
          POSTERN_INBOUND_HOST: '127.0.0.1',
          POSTERN_INBOUND_PORT: String(inboundPort),
          POSTERN_OUTBOUND_PORT: String(outboundPort),
          POSTERN_ADMIN_PORT: String(adminPort),
          ...options.sidecarEnv,
        },
        join(dir, `sidecar-${workload}.log`),
        PROXY_CPU,
      );
      children.push(child);
      await waitUntilHealthy(`http://127.0.0.1:${adminPort}/healthz/ready`, child, 30_000);
      return { child, inboundPort, outboundPort, adminPort };
    };

    /**
     * A reference proxy in front of the app (`launch` starts it on `port`,
     * pinned to PROXY_CPU), with a server certificate from the mesh CA in
     * `serverDir`; ready once the tester's certificate gets a GET through it.
     */
    const startReferenceProxy = async (
      name: string,
      launch: (serverDir: string, port: number) => Child | Promise<Child>,
    ): Promise<Target> => {
      const serverDir = join(dir, `${name.replaceAll(' ', '-')}-server`);
      await issueInto(ca, serverDir, { dnsNames: ['localhost'], ipAddresses: ['127.0.0.1'] });
      const port = await freePort();
      const child = await launch(serverDir, port);
      children.push(child);
      const client = new Agent({
        connect: {
          ca: ca.bundlePem,
          cert: await readFile(join(clientCertDir, 'cert.pem'), 'utf8'),
          key: await readFile(join(clientCertDir, 'key.pem'), 'utf8'),
        },
      });
      try {
        await waitUntilHealthy(`https://127.0.0.1:${port}/orders`, child, 10_000, client);
      } finally {
        await client.close();
      }
      return { name, url: `https://127.0.0.1:${port}`, clientCertDir, proxies: [child] };
    };

    return {
      dir,
      appPort,
      clientCertDir,
      direct: { name: 'direct', url: `http://127.0.0.1:${appPort}` },
      async startSidecar() {
        ordersSidecar = await sidecarFor('orders');
        return {
          name: 'postern',
          url: `https://127.0.0.1:${ordersSidecar.inboundPort}`,
          clientCertDir,
          proxies: [ordersSidecar.child],
        };
      },
      async startMeshHop() {
        if (!ordersSidecar) throw new Error('start the orders sidecar first');
        const frontend = await sidecarFor('frontend');
        // Ready is not enough: frontend must have orders in its registry.
        const deadline = Date.now() + 10_000;
        for (;;) {
          const config = (await (
            await request(`http://127.0.0.1:${frontend.adminPort}/config`)
          ).body.json()) as { snapshot?: { registry: unknown[] } };
          if (config.snapshot?.registry.length) break;
          if (Date.now() > deadline) throw new Error("orders never reached frontend's registry");
          await new Promise((resolve) => setTimeout(resolve, 50));
        }
        return {
          name: 'mesh hop',
          url: `http://127.0.0.1:${frontend.outboundPort}`,
          host: 'orders.shop.svc.cluster.local',
          proxies: [frontend.child, ordersSidecar.child],
        };
      },
      async startGateway() {
        if (!ordersSidecar) throw new Error('start the orders sidecar first');
        await writeFile(join(policiesDir, 'edge.yaml'), gatewayDocuments());
        const serverDir = join(dir, 'gateway-server');
        await issueInto(ca, serverDir, { dnsNames: ['localhost'], ipAddresses: ['127.0.0.1'] });
        const tokenFile = join(dir, 'edge.token');
        await writeFileAtomic(tokenFile, await tokens.create('edge', 'shop', 'edge'));
        const [port, adminPort] = [await freePort(), await freePort()];
        const child = startChild(
          'gateway',
          // This build's gateway even when --sidecar-bin swaps the sidecars (an older build may have none).
          [...(options.sidecarNodeArgs ?? []), POSTERN_BIN, 'gateway'],
          {
            POSTERN_CONTROL_PLANE: `https://127.0.0.1:${apiPort}`,
            POSTERN_CA_FILE: join(statePaths(stateDir).ca, CA_FILES.bundle),
            POSTERN_BOOTSTRAP_TOKEN_FILE: tokenFile,
            POSTERN_WORKLOAD: 'edge',
            POSTERN_NAMESPACE: 'shop',
            POSTERN_SERVICE_ACCOUNT: 'edge',
            POSTERN_LISTEN_HOST: '127.0.0.1',
            POSTERN_LISTEN_PORT: String(port),
            POSTERN_ADMIN_PORT: String(adminPort),
            POSTERN_TLS_CERT: join(serverDir, 'cert.pem'),
            POSTERN_TLS_KEY: join(serverDir, 'key.pem'),
            ...options.sidecarEnv,
          },
          join(dir, 'gateway.log'),
          PROXY_CPU,
        );
        children.push(child);
        // Ready, and its snapshot names orders' endpoint: a request gets through.
        const client = new Agent({ connect: { ca: ca.bundlePem, servername: 'localhost' } });
        try {
          await waitUntilHealthy(
            `https://127.0.0.1:${port}/orders`,
            child,
            30_000,
            client,
            BENCH_HEADERS,
          );
        } finally {
          await client.close();
        }
        return {
          name: 'gateway',
          url: `https://127.0.0.1:${port}`,
          // Its bundle verifies the gateway's certificate; the gateway asks for no client certificate.
          clientCertDir,
          proxies: [child, ordersSidecar.child],
        };
      },
      async startNginx() {
        return startReferenceProxy('nginx', async (serverDir, port) => {
          const conf = join(dir, 'nginx.conf');
          await writeFile(conf, nginxConfig(dir, serverDir, port, appPort));
          return startProcess(
            'nginx',
            'nginx',
            ['-c', conf, '-p', dir, '-e', join(dir, 'nginx-error.log')],
            {},
            join(dir, 'nginx.log'),
            PROXY_CPU,
          );
        });
      },
      async startNodeFloor() {
        // Built as the sidecar is (a bundle, no type stripping at start), so
        // the two differ only by what Postern does.
        const floor = join(dir, 'node-floor.js');
        await build({ ...BUNDLE_OPTIONS, entryPoints: [NODE_FLOOR], outfile: floor });
        return startReferenceProxy('node floor', (serverDir, port) =>
          startChild(
            'node floor',
            [...(options.sidecarNodeArgs ?? []), floor, serverDir, String(port), String(appPort)],
            {},
            join(dir, 'node-floor.log'),
            PROXY_CPU,
          ),
        );
      },
      async applyPolicy(policy) {
        if (!ordersSidecar) throw new Error('start the orders sidecar first');
        // A connection per poll: the sidecar validates a snapshot on its event
        // loop, and a keep-alive connection it timed out meanwhile would reset
        // the next poll sent on it.
        const config = async () =>
          (await (
            await request(`http://127.0.0.1:${ordersSidecar!.adminPort}/config`, { reset: true })
          ).body.json()) as { version: string | null; routes: unknown[] };
        const before = (await config()).version;
        const saved = performance.now();
        await writeFileAtomic(join(policiesDir, 'orders.yaml'), policyDocument(policy), 0o644);
        // The control plane and then the sidecar validate a policy in time that
        // grows with the square of its routes: 10,000 took 17 s each on an idle
        // core of this machine kind, each process serving nothing meanwhile.
        const deadline = Date.now() + 300_000;
        let lastError: unknown;
        for (;;) {
          try {
            const now = await config();
            if (now.version !== before && now.routes.length === policy.routes) {
              return (performance.now() - saved) / 1000;
            }
          } catch (error) {
            lastError = error;
          }
          if (Date.now() > deadline) {
            throw new Error(
              `orders' sidecar did not get the ${policy.routes}-route policy within 300 s (${lastError ?? 'no error'}); see ${dir}/*.log`,
            );
          }
          await new Promise((resolve) => setTimeout(resolve, 250));
        }
      },
      stop,
    };
  } catch (error) {
    await stop();
    throw error;
  }
}

/**
 * nginx as the reference hop: one process (master_process off, so its CPU is
 * one /proc entry), TLS 1.2+ with a client certificate required and verified
 * against the mesh CA, a keep-alive upstream, no access log. Postern logs no
 * request either, so both do the same work.
 */
function nginxConfig(dir: string, serverDir: string, port: number, appPort: number): string {
  return `
daemon off;
master_process off;
worker_processes 1;
${process.getuid?.() === 0 ? 'user root;' : ''}
pid ${join(dir, 'nginx.pid')};
events { worker_connections 4096; }
http {
  access_log off;
  client_body_temp_path ${join(dir, 'nginx-body')};
  proxy_temp_path ${join(dir, 'nginx-proxy')};
  fastcgi_temp_path ${join(dir, 'nginx-fastcgi')};
  uwsgi_temp_path ${join(dir, 'nginx-uwsgi')};
  scgi_temp_path ${join(dir, 'nginx-scgi')};
  upstream app {
    server 127.0.0.1:${appPort};
    keepalive 64;
  }
  server {
    listen 127.0.0.1:${port} ssl;
    ssl_protocols TLSv1.2 TLSv1.3;
    ssl_certificate ${join(serverDir, 'cert.pem')};
    ssl_certificate_key ${join(serverDir, 'key.pem')};
    ssl_client_certificate ${join(serverDir, 'bundle.pem')};
    ssl_verify_client on;
    keepalive_requests 100000;
    location / {
      proxy_pass http://app;
      proxy_http_version 1.1;
      proxy_set_header Connection "";
    }
  }
}
`;
}
