/**
 * The control plane in cluster mode, end to end: sidecars bootstrap with
 * their pods' projected ServiceAccount tokens (verified by TokenReview) and
 * find their peers through Services, EndpointSlices and Pods. No API server
 * runs here, so a fake one over real HTTPS (test/fake-cluster.ts) serves
 * hand-written objects in the API's wire format; the control plane, the
 * sidecars (in this process), mTLS and the apps are real. Pods get loopback
 * addresses of their own (127.0.42.x), so each sidecar's inbound listener
 * is where its pod's EndpointSlice says.
 */
import { cp, writeFile } from 'node:fs/promises';
import { type AddressInfo, createServer, connect as tcpConnect } from 'node:net';
import { join } from 'node:path';
import t, { type Test } from 'tap';
import { Agent, ProxyAgent, request } from 'undici';
import { createCsr } from '../../certs/csr.ts';
import { startControlPlaneProcess, waitUntilHealthy } from '../../cli/processes.ts';
import { statePaths } from '../../control-plane/state.ts';
import { type FakeCluster, type StoredObject, startFakeCluster } from '../fake-cluster.ts';
import {
  endpointSlice,
  namespace,
  pod,
  projectedToken,
  reviewOf,
  service,
} from '../fixtures/cluster.ts';
import {
  adminConfig,
  certificatePoster,
  eventually,
  freePort,
  startEchoApp,
  startTestMesh,
  type TestMesh,
  tempDir,
} from '../helpers.ts';

const FRONTEND = 'spiffe://cluster.local/ns/shop/sa/frontend';
const ORDERS = 'spiffe://cluster.local/ns/shop/sa/orders';

const ordersPolicy: StoredObject = {
  apiVersion: 'postern.dev/v1alpha1',
  kind: 'RoutePolicy',
  metadata: { name: 'orders-api', namespace: 'shop' },
  spec: {
    selector: { matchLabels: { app: 'orders' } },
    routes: [
      {
        name: 'orders',
        match: { path: { prefix: '/orders' } },
        allow: [{ principals: [FRONTEND] }],
      },
    ],
  },
};

async function meshPod(name: string, app: string, ip: string): Promise<StoredObject> {
  return pod({
    name,
    namespace: 'shop',
    serviceAccount: app,
    labels: { app, 'pod-template-hash': '5c7d' },
    ip,
    inboundPort: await freePort(),
  });
}

const inboundPortOf = (object: StoredObject) =>
  (object.spec as { initContainers: { ports: { containerPort: number }[] }[] }).initContainers[1]!
    .ports[0]!.containerPort;

/** Writes the pod's projected token where its sidecar reads it, and teaches the fake API server to vouch for it. */
async function tokenFileOf(cluster: FakeCluster, mesh: TestMesh, object: StoredObject) {
  const token = projectedToken(object);
  cluster.reviews.set(token, reviewOf(object));
  const file = join(mesh.dir, `${object.metadata.name}.token`);
  await writeFile(file, token);
  return { token, file };
}

async function startClusterMesh(t: Test) {
  const orders1 = await meshPod('orders-5c7d-a', 'orders', '127.0.42.2');
  const frontend1 = await meshPod('frontend-5c7d-a', 'frontend', '127.0.42.3');
  const cluster = await startFakeCluster(t, [
    namespace('shop', { 'postern.dev/inject': 'enabled' }),
    orders1,
    frontend1,
    service('orders', 'shop'),
    service('frontend', 'shop'),
    endpointSlice('orders', 'shop', [{ pod: orders1 }]),
    endpointSlice('frontend', 'shop', [{ pod: frontend1 }]),
    ordersPolicy,
  ]);
  const mesh = await startTestMesh(t, '', { controlPlane: { kubernetes: cluster.kubeConfig } });
  const sidecarOf = async (object: StoredObject, app: string, controlPlaneUrl?: string) => {
    const echo = await startEchoApp(t);
    const sidecar = await mesh.startSidecar({
      workload: app,
      namespace: 'shop',
      serviceAccount: app,
      appPort: echo.port,
      labels: object.metadata.labels!,
      tokenFile: (await tokenFileOf(cluster, mesh, object)).file,
      inboundHost: (object.status as { podIP: string }).podIP,
      inboundPort: inboundPortOf(object),
      ...(controlPlaneUrl ? { controlPlaneUrl } : {}),
    });
    return sidecar;
  };
  return { cluster, mesh, orders1, frontend1, sidecarOf };
}

t.test(
  'sidecars bootstrap with projected ServiceAccount tokens and reach each other through discovered endpoints',
  async (t) => {
    const { cluster, orders1, frontend1, sidecarOf } = await startClusterMesh(t);
    const orders = await sidecarOf(orders1, 'orders');
    const frontend = await sidecarOf(frontend1, 'frontend');
    const reviewed = cluster.requests.filter(
      (r) => r.path === '/apis/authentication.k8s.io/v1/tokenreviews',
    );
    t.equal(reviewed.length, 2, 'each sidecar’s token was reviewed by the API server');

    // frontend's snapshot lists orders where its EndpointSlice says, as its service account.
    await eventually(
      async () => ((await adminConfig(frontend.adminPort)).snapshot?.registry.length ?? 0) > 0,
    );
    t.same((await adminConfig(frontend.adminPort)).snapshot?.registry, [
      {
        service: 'orders',
        namespace: 'shop',
        address: `127.0.42.2:${inboundPortOf(orders1)}`,
        spiffeId: ORDERS,
      },
    ]);
    const proxy = new ProxyAgent(`http://127.0.0.1:${frontend.outboundPort}`);
    t.teardown(() => proxy.close());
    const res = await request('http://orders.shop.svc.cluster.local/orders/7', {
      dispatcher: proxy,
    });
    t.equal(res.statusCode, 200);
    const echoed = (await res.body.json()) as { headers: Record<string, string> };
    t.equal(echoed.headers['x-postern-principal'], FRONTEND, 'orders saw frontend’s SVID');

    // The pod goes: its endpoint leaves the slice, and frontend's registry empties.
    cluster.put(endpointSlice('orders', 'shop', []));
    await eventually(
      async () => (await adminConfig(frontend.adminPort)).snapshot?.registry.length === 0,
    );
    t.pass('an endpoint gone from the EndpointSlice leaves the registry');
    const gone = await request('http://orders.shop.svc.cluster.local/orders/7', {
      dispatcher: proxy,
    });
    t.match(await gone.body.json(), { error: { code: 'POSTERN_UNKNOWN_DESTINATION' } });
    t.equal(
      gone.statusCode,
      502,
      'no endpoint left: not in the registry, though orders’ sidecar still runs',
    );
    t.ok((await adminConfig(orders.adminPort)).certificate, 'orders kept its certificate');
  },
);

t.test(
  'the certificate is for the service account the review returns, never for what the CSR asks; a finished or deleted pod’s token and SVID are refused',
  async (t) => {
    const { cluster, mesh, orders1 } = await startClusterMesh(t);
    const { token } = await tokenFileOf(cluster, mesh, orders1);
    const post = certificatePoster(t, mesh);
    const admin = await createCsr('spiffe://cluster.local/ns/kube-system/sa/admin');
    t.equal(
      (await post({ csr: admin.csrPem, token })).status,
      403,
      'a CSR asking for another identity than the review proved is refused',
    );
    const own = await createCsr(ORDERS);
    const issued = await post({ csr: own.csrPem, token });
    t.equal(issued.status, 200);
    t.equal(issued.body.spiffeId, ORDERS, 'the identity the review returned');

    // Renewal with that SVID works while a pod of the identity lives.
    const withSvid = new Agent({
      connect: {
        ca: mesh.controlPlane.ca.bundlePem,
        cert: issued.body.certificateChain,
        key: own.keyPem,
      },
    });
    t.teardown(() => withSvid.close());
    t.equal((await post({ csr: (await createCsr(ORDERS)).csrPem }, withSvid)).status, 200);

    // A token the API server does not vouch for.
    t.equal((await post({ csr: own.csrPem, token: projectedToken(orders1) })).status, 401);

    // The pod finishes: its token no longer bootstraps, and its identity no longer renews.
    cluster.put({ ...orders1, status: { ...(orders1.status as object), phase: 'Succeeded' } });
    await eventually(async () => (await post({ csr: own.csrPem, token })).status === 401);
    await eventually(
      async () => (await post({ csr: (await createCsr(ORDERS)).csrPem }, withSvid)).status === 401,
    );
    t.pass('a finished pod’s token and SVID are refused');

    // A pod created a moment ago, whose watch event has not arrived: read from the API.
    const late = await meshPod('orders-5c7d-late', 'orders', '127.0.42.9');
    cluster.put(late, 'quietly');
    const lateToken = projectedToken(late);
    cluster.reviews.set(lateToken, reviewOf(late));
    t.equal((await post({ csr: own.csrPem, token: lateToken })).status, 200);

    // Deleted: the API server refuses its token, and the control plane its SVID once no pod of it lives.
    cluster.remove('Pod', 'shop', 'orders-5c7d-late');
    await eventually(
      async () => (await post({ csr: own.csrPem, token: lateToken })).status === 401,
    );
    t.pass('a deleted pod’s token is refused');
  },
);

/**
 * The control plane's Service as a sidecar sees it: the manifests set
 * `sessionAffinity: ClientIP`, so every connection from one pod (its watch,
 * its acks, its renewals) goes to the same replica, and to another only
 * when that one is gone. Here all sidecars connect from 127.0.0.1, so each
 * gets a front of its own, pinned to `preferred`. TLS passes through
 * untouched (sidecars verify the replica itself).
 */
async function serviceWithAffinity(
  t: Test,
  ports: readonly number[],
  preferred: number,
): Promise<string> {
  const server = createServer((client) => {
    client.on('error', () => {});
    const attempt = (index: number, left: number) => {
      const upstream = tcpConnect(ports[index % ports.length]!, '127.0.0.1');
      upstream.once('connect', () => {
        upstream.on('error', () => client.destroy());
        client.on('close', () => upstream.destroy());
        upstream.on('close', () => client.destroy());
        client.pipe(upstream).pipe(client);
      });
      upstream.once('error', () => (left > 1 ? attempt(index + 1, left - 1) : client.destroy()));
    };
    attempt(preferred, ports.length);
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  t.teardown(() => new Promise((resolve) => server.close(resolve)));
  return `https://127.0.0.1:${(server.address() as AddressInfo).port}`;
}

t.test(
  'two control-plane replicas serve the same snapshot for the same cluster, and the mesh outlives one of them',
  async (t) => {
    const { cluster, mesh, orders1, frontend1, sidecarOf } = await startClusterMesh(t);
    const frontend2 = await meshPod('frontend-5c7d-b', 'frontend', '127.0.42.4');
    cluster.put(frontend2);
    cluster.put(endpointSlice('frontend', 'shop', [{ pod: frontend1 }, { pod: frontend2 }]));
    // The second replica, as its own process: its own state folder, the same
    // CA (the postern-ca Secret both mount), the same API server.
    const dir = await tempDir(t);
    const replicaState = join(dir, 'state');
    await cp(statePaths(mesh.stateDir).ca, statePaths(replicaState).ca, { recursive: true });
    const kubeconfig = join(dir, 'kubeconfig');
    await writeFile(kubeconfig, cluster.kubeConfig.exportConfig());
    const replicaPort = await freePort();
    const replica = startControlPlaneProcess({
      policiesDir: dir,
      stateDir: replicaState,
      apiPort: replicaPort,
      logFile: join(dir, 'control-plane-2.log'),
      env: { POSTERN_POLICY_SOURCE: 'kubernetes', POSTERN_KUBECONFIG: kubeconfig },
    });
    t.teardown(() => replica.process.kill('SIGKILL'));
    const verifying = new Agent({ connect: { ca: mesh.controlPlane.ca.bundlePem } });
    t.teardown(() => verifying.close());
    await waitUntilHealthy(
      `https://127.0.0.1:${replicaPort}/v1/trust-bundle`,
      replica,
      20_000,
      verifying,
    );
    const replicas = [mesh.controlPlane.apiPort, replicaPort];
    const through = async (object: StoredObject, app: string, preferred: number) =>
      sidecarOf(object, app, await serviceWithAffinity(t, replicas, preferred));

    await through(orders1, 'orders', 0);
    const first = await through(frontend1, 'frontend', 0);
    const second = await through(frontend2, 'frontend', 1);
    const watchingHere = () => new Set(mesh.controlPlane.hub.acks.map((ack) => ack.address)).size;
    const snapshots = async () =>
      Promise.all([first, second].map(async (s) => (await adminConfig(s.adminPort)).snapshot));
    await eventually(async () => (await snapshots()).every((s) => s?.registry.length === 1));
    t.equal(
      watchingHere(),
      2,
      'orders and one frontend watch this replica, the other frontend the other',
    );
    const [a, b] = await snapshots();
    t.equal(a!.hash, b!.hash, 'the same hash from either replica');
    t.same(a!.registry, b!.registry);

    // One replica is killed: its sidecar reconnects to the other and keeps calling orders.
    replica.process.kill('SIGKILL');
    await replica.exited;
    await eventually(() => watchingHere() === 3, 20_000);
    t.pass('every sidecar now watches the surviving replica');
    const proxy = new ProxyAgent(`http://127.0.0.1:${second.outboundPort}`);
    t.teardown(() => proxy.close());
    const res = await request('http://orders.shop.svc.cluster.local/orders/1', {
      dispatcher: proxy,
    });
    t.equal(res.statusCode, 200);
    await res.body.dump();
  },
);
