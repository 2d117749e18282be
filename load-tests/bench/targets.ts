/**
 * The processes the harness measures, each started the way a user runs it:
 * the app, a control plane, a Postern sidecar in front of the app (mTLS
 * inbound), and nginx configured for the same mTLS termination and
 * keep-alive proxying. Proxies are pinned to PROXY_CPU; the app, the control
 * plane and the load generator to LOAD_CPU, the same for every target.
 */
import { mkdir, readFile, writeFile } from 'node:fs/promises';
import { join, resolve } from 'node:path';
import { Agent, request } from 'undici';
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
import type { Route } from '../../common/policy/schema.ts';
import { writeFileAtomic } from '../../common/private-file.ts';
import { statePaths } from '../../control-plane/state.ts';
import { TokenStore } from '../../control-plane/tokens.ts';

export const PROXY_CPU = 0;
export const LOAD_CPU = 1;

const TESTER = 'spiffe://cluster.local/ns/default/sa/tester';
const FRONTEND = 'spiffe://cluster.local/ns/shop/sa/frontend';
const APP = resolve(import.meta.dirname, 'app.ts');

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
  startNginx(): Promise<Target>;
  stop(): Promise<void>;
}

/** The one RoutePolicy on orders: the tester and frontend may GET /orders, plus `extraRoutes` that never match it. */
function policyYaml(extraRoutes: readonly Route[]): string {
  return JSON.stringify({
    apiVersion: 'postern.dev/v1alpha1',
    kind: 'RoutePolicy',
    metadata: { name: 'orders-api', namespace: 'shop' },
    spec: {
      selector: { matchLabels: { app: 'orders' } },
      routes: [
        {
          name: 'orders',
          match: { methods: ['GET'], path: { prefix: '/orders' } },
          allow: [{ principals: [TESTER, FRONTEND] }],
        },
        ...extraRoutes,
      ],
    },
  });
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
    extraRoutes?: readonly Route[];
    /** Node flags for the sidecar process (experiments: heap settings, profiling). */
    sidecarNodeArgs?: readonly string[];
    /** Another build of the `postern` binary to run the sidecar from (experiments: a bundle). */
    sidecarBin?: string;
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
    await writeFile(join(policiesDir, 'orders.yaml'), policyYaml(options.extraRoutes ?? []));
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

    const apiPort = await freePort();
    const controlPlane = startControlPlaneProcess({
      policiesDir,
      stateDir,
      apiPort,
      logFile: join(dir, 'control-plane.log'),
      cpu: LOAD_CPU,
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
        },
        join(dir, `sidecar-${workload}.log`),
        PROXY_CPU,
      );
      children.push(child);
      await waitUntilHealthy(`http://127.0.0.1:${adminPort}/healthz/ready`, child, 30_000);
      return { child, inboundPort, outboundPort, adminPort };
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
      async startNginx() {
        const serverDir = join(dir, 'nginx-server');
        await issueInto(ca, serverDir, { dnsNames: ['localhost'], ipAddresses: ['127.0.0.1'] });
        const port = await freePort();
        const conf = join(dir, 'nginx.conf');
        await writeFile(conf, nginxConfig(dir, serverDir, port, appPort));
        const nginx = startProcess(
          'nginx',
          'nginx',
          ['-c', conf, '-p', dir, '-e', join(dir, 'nginx-error.log')],
          {},
          join(dir, 'nginx.log'),
          PROXY_CPU,
        );
        children.push(nginx);
        const client = new Agent({
          connect: {
            ca: ca.bundlePem,
            cert: await readFile(join(clientCertDir, 'cert.pem'), 'utf8'),
            key: await readFile(join(clientCertDir, 'key.pem'), 'utf8'),
          },
        });
        await waitUntilHealthy(`https://127.0.0.1:${port}/orders`, nginx, 10_000, client);
        await client.close();
        return { name: 'nginx', url: `https://127.0.0.1:${port}`, clientCertDir, proxies: [nginx] };
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
