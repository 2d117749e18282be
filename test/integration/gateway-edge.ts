/**
 * A mesh with `postern gateway` in front (the gateway's own workload `edge`
 * in namespace shop) and mesh services behind it, each an echo app behind
 * its sidecar, whose RoutePolicies admit the gateway's SPIFFE ID only.
 * Clients reach the gateway over real TLS with the operator's server
 * certificate (openssl-made), naming hosts by SNI and Host.
 */
import { readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { Agent, request } from 'undici';
import type { GatewayOptions } from '../../sidecar/gateway/gateway.ts';
import {
  adminConfig,
  type EchoApp,
  eventually,
  startEchoApp,
  startTestMesh,
  type TestMesh,
  untilReady,
} from '../helpers.ts';
import { type CertFiles, opensslCa, opensslLeaf } from '../openssl.ts';

export const GATEWAY_ID = 'spiffe://cluster.local/ns/shop/sa/edge';

/** A RoutePolicy for a backend that admits the gateway and nothing else. */
export const backendPolicy = (service: string) => `
apiVersion: postern.dev/v1alpha1
kind: RoutePolicy
metadata: { name: ${service}-api, namespace: shop }
spec:
  selector: { matchLabels: { app: ${service} } }
  routes:
    - name: all
      match: { path: { prefix: / } }
      allow: [{ principals: ["${GATEWAY_ID}"] }]
`;

/** The gateway's own policy: every request allowed unless `routes` says otherwise. */
export const OPEN_EDGE = `
apiVersion: postern.dev/v1alpha1
kind: RoutePolicy
metadata: { name: edge, namespace: shop }
spec:
  selector: { matchLabels: { app: edge } }
  defaultAction: allow
  routes:
    - name: all
      match: { path: { prefix: / } }
`;

export interface Edge {
  readonly mesh: TestMesh;
  readonly apps: Readonly<Record<string, EchoApp>>;
  readonly port: number;
  readonly adminPort: number;
  readonly serverCa: CertFiles;
  readonly serverCert: CertFiles;
  readonly dir: string;
  /** A request to the gateway for `host` (SNI and Host), trusting the server CA. */
  call(
    host: string,
    path: string,
    options?: {
      method?: string;
      headers?: Record<string, string | string[]>;
      body?: string | Buffer;
      agent?: Agent;
    },
  ): Promise<{ status: number; headers: Record<string, unknown>; body: string }>;
  /** What the app of `service` last received, as the echo app states it. */
  lastSeen(service: string): { url: string; headers: Record<string, string> };
}

export const HOSTS = ['shop.example.com', '*.shop.example.com', 'api.example.com'];

/** Everything for Host orders to the orders backend. */
export const ORDERS_HTTP_ROUTE = `
apiVersion: gateway.networking.k8s.io/v1
kind: HTTPRoute
metadata: { name: orders, namespace: shop }
spec:
  parentRefs: [{ name: edge }]
  hostnames: [orders]
  rules:
    - backendRefs: [{ name: orders, port: 80 }]
`;

export async function startEdge(
  t: Parameters<typeof startTestMesh>[0],
  options: {
    services: readonly string[];
    httpRoutes: string;
    edgePolicy?: string;
    gateway?: Partial<GatewayOptions>;
  },
): Promise<Edge> {
  const mesh = await startTestMesh(
    t,
    [options.edgePolicy ?? OPEN_EDGE, ...options.services.map(backendPolicy)].join('\n---\n'),
  );
  await writeFile(join(mesh.policiesDir, 'routes.yaml'), options.httpRoutes);
  const apps: Record<string, EchoApp> = {};
  for (const service of options.services) {
    apps[service] = await startEchoApp(t);
    const sidecar = await mesh.startSidecar({
      workload: service,
      namespace: 'shop',
      appPort: apps[service]!.port,
    });
    await untilReady(sidecar.adminPort);
  }
  const serverCa = await opensslCa(mesh.dir, 'edge-ca');
  const serverCert = await opensslLeaf(mesh.dir, serverCa, 'shop.example.com', {
    server: { dns: HOSTS, ips: ['127.0.0.1'] },
  });
  const gateway = await mesh.startGateway({
    workload: 'edge',
    namespace: 'shop',
    tlsCertFile: serverCert.cert,
    tlsKeyFile: serverCert.key,
    ...options.gateway,
  });
  await untilReady(gateway.adminPort);
  const ca = await readFile(serverCa.cert, 'utf8');
  const agents = new Map<string, Agent>();
  const agentFor = (host: string) => {
    let agent = agents.get(host);
    if (!agent) {
      // undici names the Host header's host in SNI and checks the certificate for it; routing
      // tests send hosts no certificate covers (a 404's), so the chain is checked, the name not.
      agent = new Agent({
        connect: { ca, servername: host, checkServerIdentity: () => undefined },
      });
      agents.set(host, agent);
    }
    return agent;
  };
  t.teardown(() => Promise.all([...agents.values()].map((a) => a.close())));
  const edge: Edge = {
    mesh,
    apps,
    port: gateway.port,
    adminPort: gateway.adminPort,
    serverCa,
    serverCert,
    dir: mesh.dir,
    async call(host, path, o = {}) {
      const response = await request(`https://127.0.0.1:${gateway.port}${path}`, {
        method: (o.method ?? 'GET') as 'GET',
        headers: { host, ...o.headers },
        ...(o.body === undefined ? {} : { body: o.body }),
        // SNI names a host the certificate covers; Host is what routing reads.
        dispatcher: o.agent ?? agentFor('shop.example.com'),
      });
      return {
        status: response.statusCode,
        headers: response.headers,
        body: await response.body.text(),
      };
    },
    lastSeen(service) {
      const seen = apps[service]!.requests.at(-1)!;
      return { url: seen.url!, headers: seen.headers as Record<string, string> };
    },
  };
  // The routes reach the gateway in its snapshot, and the backends in its registry.
  await eventually(async () => {
    const config = (await adminConfig(gateway.adminPort)) as {
      snapshot: { registry?: unknown[]; httpRoutes?: unknown[] } | null;
    };
    return (
      (config.snapshot?.registry?.length ?? 0) >= options.services.length &&
      (config.snapshot?.httpRoutes?.length ?? 0) > 0
    );
  });
  return edge;
}
