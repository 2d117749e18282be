/**
 * Regression tests for the security review's control-plane findings (issue
 * 6: 1, 2, 3, 7, 10, 12), each named after the defect, with what a reviewer
 * would try next beside it. Every call is real HTTPS to a control plane on
 * port 0, with certificates from its CA.
 */
import { openSync } from 'node:fs';
import { readFile } from 'node:fs/promises';
import { connect as connectTcp, type Socket } from 'node:net';
import { join } from 'node:path';
import { connect as connectTls } from 'node:tls';
import t, { type Test } from 'tap';
import { Agent, request } from 'undici';
import { createCsr } from '../../certs/csr.ts';
import { Logger } from '../../common/log.ts';
import { SseParser } from '../../common/sse.ts';
import type { Snapshot } from '../../common/wire.ts';
import { workloadDnsNames } from '../../control-plane/api/caller.ts';
import {
  adminConfig,
  adminMetrics,
  clientCredentials,
  eventually,
  mtlsAgent,
  ordersPolicyYaml,
  type PemCredentials,
  postern,
  shopSidecars,
  startEchoApp,
  startTestMesh,
  type TestMesh,
  tempDir,
  untilReady,
  workloadCredentials,
} from '../helpers.ts';

const FRONTEND = 'spiffe://cluster.local/ns/shop/sa/frontend';
const OPERATOR = 'spiffe://cluster.local/ns/postern-system/sa/operator';
const ORDERS = 'spiffe://cluster.local/ns/shop/sa/orders';

interface Watch {
  readonly status: number;
  readonly error?: { code: string; message: string };
  /** Snapshots received so far, oldest first. */
  readonly snapshots: Snapshot[];
  /** Resolves when the control plane ends the stream. */
  readonly ended: Promise<void>;
  close(): void;
}

/** Opens GET /v1/snapshots as `credentials`, reading its events in the background. */
async function openWatch(
  t: Test,
  mesh: TestMesh,
  credentials: PemCredentials,
  query: Record<string, string>,
): Promise<Watch> {
  const agent = new Agent({ connect: credentials });
  const abort = new AbortController();
  t.teardown(() => {
    abort.abort();
    return agent.close();
  });
  const res = await request(`${mesh.controlPlaneUrl}/v1/snapshots?${new URLSearchParams(query)}`, {
    dispatcher: agent,
    signal: abort.signal,
  });
  if (res.statusCode !== 200) {
    const body = (await res.body.json()) as { error: { code: string; message: string } };
    return {
      status: res.statusCode,
      error: body.error,
      snapshots: [],
      ended: Promise.resolve(),
      close() {},
    };
  }
  const snapshots: Snapshot[] = [];
  const parser = new SseParser();
  const ended = (async () => {
    try {
      for await (const chunk of res.body) {
        for (const event of parser.push(String(chunk))) snapshots.push(JSON.parse(event.data));
      }
    } catch {}
  })();
  return { status: 200, snapshots, ended, close: () => abort.abort() };
}

async function ack(mesh: TestMesh, credentials: PemCredentials, body: unknown) {
  const agent = new Agent({ connect: credentials });
  try {
    const res = await request(`${mesh.controlPlaneUrl}/v1/acks`, {
      method: 'POST',
      dispatcher: agent,
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify(body),
    });
    const text = await res.body.text();
    return { status: res.statusCode, body: text ? JSON.parse(text) : undefined };
  } finally {
    await agent.close();
  }
}

async function listAcks(mesh: TestMesh, credentials: PemCredentials) {
  const agent = new Agent({ connect: credentials });
  try {
    const res = await request(`${mesh.controlPlaneUrl}/v1/acks`, { dispatcher: agent });
    return { status: res.statusCode, body: (await res.body.json()) as Record<string, unknown> };
  } finally {
    await agent.close();
  }
}

t.test(
  'finding 1: one certificate could exhaust the control plane and poison registries',
  async (t) => {
    const inventoryPolicy = `
apiVersion: postern.dev/v1alpha1
kind: RoutePolicy
metadata: { name: inventory-api, namespace: shop }
spec:
  selector: { matchLabels: { app: inventory } }
  routes:
    - name: stock
      allow:
        - principals: [${FRONTEND}]
`;
    const mesh = await startTestMesh(t, `${ordersPolicyYaml([FRONTEND])}---${inventoryPolicy}`, {
      controlPlane: { maxWatchesPerIdentity: 3, minFanOutIntervalMs: 1_000 },
    });
    await mesh.tokenFor('orders', 'shop');
    await mesh.tokenFor('frontend', 'shop');
    const orders = await workloadCredentials(mesh.controlPlane.ca, 'orders', 'shop');
    const frontend = await workloadCredentials(mesh.controlPlane.ca, 'frontend', 'shop');

    await t.test(
      'a registration at an address the caller does not connect from is refused, and peers never see it',
      async (t) => {
        const observer = await openWatch(t, mesh, frontend, {});
        for (const address of ['10.1.2.3:15006', '[fd00::1]:15006', 'orders.example:15006']) {
          const forged = await openWatch(t, mesh, orders, { address });
          t.equal(forged.status, 403, address);
          t.match(forged.error?.message, /is not where this sidecar connects from/);
        }
        await new Promise((resolve) => setTimeout(resolve, 400));
        t.same(observer.snapshots.at(-1)?.registry, [], 'no forged endpoint reached a peer');
        observer.close();
      },
    );

    await t.test(
      'an identity holds a bounded number of watches; the same address replaces its old watch',
      async (t) => {
        const first = await openWatch(t, mesh, orders, { address: '127.0.0.1:10001' });
        t.equal(first.status, 200);
        const again = await openWatch(t, mesh, orders, { address: '127.0.0.1:10001' });
        t.equal(again.status, 200, 'a restarted replica at the same address is let in');
        await first.ended;
        t.pass('and its old stream was ended');
        const second = await openWatch(t, mesh, orders, { address: '127.0.0.2:10001' });
        const third = await openWatch(t, mesh, orders, { address: '127.0.0.3:10001' });
        t.equal(second.status, 200);
        t.equal(third.status, 200);
        const fourth = await openWatch(t, mesh, orders, { address: '127.0.0.4:10001' });
        t.equal(fourth.status, 429);
        t.equal(fourth.error?.code, 'POSTERN_WATCH_LIMIT');
        const other = await openWatch(t, mesh, frontend, { address: '127.0.0.1:10002' });
        t.equal(other.status, 200, 'the bound is per identity, not global');
        for (const w of [again, second, third, other]) w.close();
      },
    );

    await t.test(
      'a burst of registrations reaches a peer as few snapshots, and only the entries it may call',
      async (t) => {
        // Other workloads than the bound test's, whose closed watches may still be leaving.
        await mesh.tokenFor('inventory', 'shop');
        await mesh.tokenFor('payments', 'shop');
        const inventory = await workloadCredentials(mesh.controlPlane.ca, 'inventory', 'shop');
        const payments = await workloadCredentials(mesh.controlPlane.ca, 'payments', 'shop');
        const observer = await openWatch(t, mesh, frontend, {});
        await eventually(() => observer.snapshots.length === 1);
        const burst = await Promise.all([
          openWatch(t, mesh, inventory, { address: '127.0.0.5:1' }),
          openWatch(t, mesh, inventory, { address: '127.0.0.6:1' }),
          openWatch(t, mesh, inventory, { address: '127.0.0.7:1' }),
          openWatch(t, mesh, payments, { address: '127.0.0.8:1' }),
        ]);
        t.same(
          burst.map((w) => w.status),
          [200, 200, 200, 200],
        );
        await eventually(() => observer.snapshots.at(-1)?.registry.length === 3);
        // Long enough for any fan-out still due (they are at least 1 s apart).
        await new Promise((resolve) => setTimeout(resolve, 1_100));
        t.ok(
          observer.snapshots.length <= 3,
          `four registrations cost the observer ${observer.snapshots.length - 1} snapshot(s), not four`,
        );
        t.same(
          observer.snapshots.at(-1)?.registry.map((e) => e.service),
          ['inventory', 'inventory', 'inventory'],
          'payments admits no call from frontend (mesh default deny), so frontend is not told where it is',
        );
        const paymentsView = burst[3]!;
        t.same(paymentsView.snapshots.at(-1)?.registry, [], 'nor does inventory admit payments');
        for (const w of [observer, ...burst]) w.close();
      },
    );
  },
);

t.test(
  'a sidecar bound to every interface advertised an address the control plane refused, and never became ready (review)',
  async (t) => {
    const mesh = await startTestMesh(t, ordersPolicyYaml([FRONTEND]));
    const app = await startEchoApp(t);
    const sidecar = await mesh.startSidecar({
      workload: 'orders',
      namespace: 'shop',
      appPort: app.port,
      inboundHost: '0.0.0.0',
    });
    await untilReady(sidecar.adminPort);
    const operator = await clientCredentials(mesh.controlPlane.ca, OPERATOR);
    const acks = (await listAcks(mesh, operator)).body.acks as { address: string }[];
    t.same(
      acks.map((a) => a.address),
      [`127.0.0.1:${sidecar.inboundPort}`],
      'it advertises the address it reaches the control plane from',
    );
  },
);

t.test(
  'finding 2: acks were unbounded, forgeable in the log, and readable by anyone',
  async (t) => {
    const dir = await tempDir(t);
    const logFile = join(dir, 'control-plane.log');
    const mesh = await startTestMesh(t, '', {
      controlPlane: { logger: new Logger('control-plane', { fd: openSync(logFile, 'w') }) },
    });
    await mesh.tokenFor('orders', 'shop');
    const orders = await workloadCredentials(mesh.controlPlane.ca, 'orders', 'shop');
    const operator = await clientCredentials(mesh.controlPlane.ca, OPERATOR);
    const applied = { workload: 'orders', version: '1.1', hash: 'h', status: 'applied' };

    await t.test('an ack for no open watch is refused and stored nowhere', async (t) => {
      for (const address of [undefined, '10.1.0.1:15006', '127.0.0.1:1']) {
        const res = await ack(mesh, orders, { ...applied, ...(address ? { address } : {}) });
        t.equal(res.status, 409, `address ${address}`);
        t.equal(res.body.error.code, 'POSTERN_NO_WATCH');
      }
      t.same((await listAcks(mesh, operator)).body.acks, []);
    });

    await t.test('an ack is kept on its watch, bounded, and leaves with it', async (t) => {
      const watch = await openWatch(t, mesh, orders, { address: '127.0.0.1:2000' });
      for (let i = 0; i < 50; i++) {
        const res = await ack(mesh, orders, {
          ...applied,
          version: `1.${i}`,
          address: '127.0.0.1:2000',
          status: 'rejected',
          reason: 'r'.repeat(5000),
        });
        t.equal(res.status, 204);
      }
      const acks = (await listAcks(mesh, operator)).body.acks as {
        version: string;
        reason: string;
      }[];
      t.equal(acks.length, 1, 'one entry per watch, however many acks');
      t.equal(acks[0]!.version, '1.49');
      t.equal(acks[0]!.reason.length, 1024, 'a long reason is cut');
      const huge = await ack(mesh, orders, { ...applied, reason: 'x'.repeat(20_000) });
      t.equal(huge.status, 413, 'a body past 16 KiB is refused');
      const longVersion = await ack(mesh, orders, { ...applied, version: 'v'.repeat(200) });
      t.equal(longVersion.status, 400);
      watch.close();
      await eventually(async () => ((await listAcks(mesh, operator)).body.acks as []).length === 0);
    });

    await t.test(
      "an ack body cannot override the log line's time, level, msg or spiffeId",
      async (t) => {
        const watch = await openWatch(t, mesh, orders, { address: '127.0.0.1:2001' });
        const forged = await ack(mesh, orders, {
          ...applied,
          address: '127.0.0.1:2001',
          status: 'rejected',
          reason: 'bad',
          time: '1999-01-01T00:00:00Z',
          level: 'info',
          msg: 'certificate issued',
          spiffeId: 'spiffe://cluster.local/ns/kube-system/sa/admin',
        });
        t.equal(forged.status, 204);
        let line: Record<string, unknown> | undefined;
        await eventually(async () => {
          line = (await readFile(logFile, 'utf8'))
            .split('\n')
            .filter(Boolean)
            .map((l) => JSON.parse(l) as Record<string, unknown>)
            .find((l) => l.reason === 'bad');
          return line !== undefined;
        });
        t.equal(line!.msg, 'snapshot rejected by sidecar');
        t.equal(line!.level, 'warn');
        t.equal(line!.spiffeId, 'spiffe://cluster.local/ns/shop/sa/orders');
        t.not(line!.time, '1999-01-01T00:00:00Z');
        watch.close();
      },
    );

    await t.test('the ack status is for operators only', async (t) => {
      const tester = await clientCredentials(
        mesh.controlPlane.ca,
        'spiffe://cluster.local/ns/default/sa/tester',
      );
      for (const credentials of [tester, orders]) {
        const res = await listAcks(mesh, credentials);
        t.equal(res.status, 403);
        t.match(res.body, { error: { code: 'POSTERN_FORBIDDEN', message: /is not an operator/ } });
      }
      t.equal((await listAcks(mesh, operator)).status, 200);
    });
  },
);

t.test(
  'finding 3: a workload could register as another workload sharing its service account',
  async (t) => {
    const mesh = await startTestMesh(t, '');
    // payments runs as service account frontend, as the review reproduced.
    await mesh.tokenFor('payments', 'shop', 'frontend');
    await mesh.tokenFor('frontend', 'shop');
    const payments = await workloadCredentials(
      mesh.controlPlane.ca,
      'payments',
      'shop',
      'frontend',
    );
    const asFrontend = await openWatch(t, mesh, payments, {
      workload: 'frontend',
      address: '127.0.0.1:3000',
    });
    t.equal(asFrontend.status, 403);
    t.match(asFrontend.error?.message, /issued for workload "payments", not "frontend"/);
    const ackAsFrontend = await ack(mesh, payments, {
      workload: 'frontend',
      version: '1.1',
      hash: 'h',
      status: 'applied',
    });
    t.equal(ackAsFrontend.status, 403, 'nor can it ack as frontend');

    const own = await openWatch(t, mesh, payments, {
      workload: 'payments',
      address: '127.0.0.1:3000',
    });
    t.equal(own.status, 200, 'it registers as the workload its certificate names');
    own.close();

    const bare = await clientCredentials(mesh.controlPlane.ca, FRONTEND);
    const withoutWorkload = await openWatch(t, mesh, bare, { workload: 'frontend' });
    t.equal(
      withoutWorkload.status,
      403,
      'a certificate naming no workload (certs issue) registers as none',
    );
    t.match(withoutWorkload.error?.message, /not issued for one workload/);
  },
);

t.test(
  'finding 10: a sidecar chose its own labels, and with them the policies it received',
  async (t) => {
    const frontendPolicy = `
apiVersion: postern.dev/v1alpha1
kind: RoutePolicy
metadata: { name: frontend-site, namespace: shop }
spec:
  selector: { matchLabels: { app: frontend } }
  routes:
    - name: site
      allow:
        - principals: ["*"]
`;
    const mesh = await startTestMesh(t, `${ordersPolicyYaml([FRONTEND])}---${frontendPolicy}`);
    await mesh.tokenFor('orders', 'shop');
    const orders = await workloadCredentials(mesh.controlPlane.ca, 'orders', 'shop');
    const asFrontend = await openWatch(t, mesh, orders, { labels: 'app=frontend' });
    t.equal(asFrontend.status, 403);
    t.match(asFrontend.error?.message, /labels come from the credential/);
    const subset = await openWatch(t, mesh, orders, { labels: '' });
    t.equal(subset.status, 200, 'asking for no labels gets the bound ones');
    await eventually(() => subset.snapshots.length > 0);
    t.same(
      subset.snapshots[0]!.policies.map((p) => p.metadata.name),
      ['orders-api'],
      "orders receives orders' policy, not frontend's",
    );
    subset.close();

    await mesh.tokenFor('billing', 'shop', 'billing', { app: 'billing', tier: 'backend' });
    const billing = await workloadCredentials(mesh.controlPlane.ca, 'billing', 'shop');
    const same = await openWatch(t, mesh, billing, { labels: 'tier=backend,app=billing' });
    t.equal(same.status, 200, 'the bound labels, in any order, are accepted');
    same.close();
    const fewer = await openWatch(t, mesh, billing, { labels: 'app=billing' });
    t.equal(fewer.status, 403, 'dropping a label (to slip out of a selector) is refused too');
  },
);

t.test(
  'finding 12: token revoke left watches and registrations of the identity open',
  async (t) => {
    const mesh = await startTestMesh(t, ordersPolicyYaml([FRONTEND]));
    const app = await startEchoApp(t);
    const { frontend } = await shopSidecars(mesh, app.port);
    await eventually(
      async () => (await adminConfig(frontend.adminPort)).snapshot?.registry.length === 1,
    );
    // A certificate of orders issued before the revocation, valid for an hour
    // (what a stolen SVID is); peers refuse it by its issue time.
    const stolenCredentials = await clientCredentials(mesh.controlPlane.ca, ORDERS, {
      now: new Date(Date.now() - 2_000),
      dnsNames: workloadDnsNames('orders', 'shop'),
    });
    const stolen = mtlsAgent(stolenCredentials);
    t.teardown(() => stolen.close());
    // A keep-alive connection opened with it before the revocation.
    const open = connectTls({
      host: '127.0.0.1',
      port: frontend.inboundPort,
      ...stolenCredentials,
      checkServerIdentity: () => undefined,
    });
    open.on('error', () => {});
    open.on('data', () => {});
    const openClosed = new Promise((resolve) => open.once('close', resolve));
    await new Promise((resolve) => open.once('secureConnect', resolve));
    open.write('GET / HTTP/1.1\r\nhost: frontend\r\n\r\n');

    const revoke = postern('token', 'revoke', '--state', mesh.stateDir, '--spiffe-id', ORDERS);
    t.equal(revoke.status, 0, revoke.stderr);
    await eventually(
      async () => (await adminConfig(frontend.adminPort)).snapshot?.registry.length === 0,
      5_000,
    );
    t.pass("frontend's registry dropped orders without waiting for orders to disconnect");

    const codeFrom = async (agent: Agent) => {
      const res = await request(`https://127.0.0.1:${frontend.inboundPort}/`, {
        dispatcher: agent,
      });
      return ((await res.body.json()) as { error: { code: string } }).error.code;
    };
    await eventually(async () => (await codeFrom(stolen)) === 'POSTERN_REVOKED', 5_000);
    t.pass("peers refuse the revoked identity's certificates issued before the revocation");
    // Minted after the revocation (say, the identity re-bound by an operator): policy decides.
    const reissued = mtlsAgent(
      await clientCredentials(mesh.controlPlane.ca, ORDERS, { now: new Date(Date.now() + 5_000) }),
    );
    t.teardown(() => reissued.close());
    t.equal(
      await codeFrom(reissued),
      'POSTERN_DENIED',
      'a later certificate is not refused as revoked',
    );

    // The operator binds orders again: the stolen certificate must not ride on that.
    await mesh.tokenFor('orders', 'shop');
    const renewing = new Agent({ connect: stolenCredentials });
    t.teardown(() => renewing.close());
    const renewal = await request(`${mesh.controlPlaneUrl}/v1/certificates`, {
      method: 'POST',
      dispatcher: renewing,
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ csr: (await createCsr(ORDERS)).csrPem }),
    });
    t.equal(renewal.statusCode, 401, 'it cannot renew itself (review: it renewed once re-bound)');
    t.match(await renewal.body.text(), /issued before the identity was revoked/);
    const watch = await openWatch(t, mesh, stolenCredentials, { address: '127.0.0.1:4000' });
    t.equal(watch.status, 401, 'nor register as an orders endpoint');
    const forgedAck = await ack(mesh, stolenCredentials, {
      workload: 'orders',
      version: '1.1',
      hash: 'forged',
      status: 'applied',
    });
    t.equal(forgedAck.status, 401, 'nor post acks (review: a forged ack was recorded)');
    await openClosed;
    t.pass('the connection it had open before the revocation was ended (review)');

    // A sidecar of the re-bound identity bootstraps at once: its certificate
    // starts after the revocation's cut-off, so nothing refuses it (review:
    // it was refused as revoked until its renewal, 12 h later).
    const rebound = await mesh.startSidecar({
      workload: 'orders',
      namespace: 'shop',
      appPort: app.port,
    });
    await untilReady(rebound.adminPort);
    t.pass('a sidecar bootstrapped right after the revocation is ready');
  },
);

/** Opens `count` TCP connections that never start a TLS handshake; resolves with them once connected. */
async function idleConnections(port: number, count: number): Promise<Socket[]> {
  return Promise.all(
    Array.from(
      { length: count },
      () =>
        new Promise<Socket>((resolve) => {
          const socket = connectTcp(port, '127.0.0.1', () => resolve(socket));
          socket.on('error', () => {});
        }),
    ),
  );
}

const closed = (socket: Socket) =>
  socket.destroyed ? Promise.resolve() : new Promise<void>((r) => socket.once('close', () => r()));

t.test(
  'finding 7: idle connections that never handshake were held for minutes, with no cap',
  async (t) => {
    const dir = await tempDir(t);
    const logFile = join(dir, 'control-plane.log');
    const mesh = await startTestMesh(t, '', {
      controlPlane: {
        logger: new Logger('control-plane', { fd: openSync(logFile, 'w') }),
        limits: { maxConnections: 10, handshakeTimeoutMs: 300 },
      },
    });
    const port = mesh.controlPlane.apiPort;
    const sockets = await idleConnections(port, 15);
    const startedAt = performance.now();
    await Promise.all(sockets.map(closed));
    t.ok(
      performance.now() - startedAt < 5_000,
      'every idle connection was closed within the handshake timeout, not two minutes',
    );
    const lines = (await readFile(logFile, 'utf8')).split('\n').filter(Boolean);
    const capLine = lines.map((l) => JSON.parse(l)).find((l) => /connection limit/.test(l.msg));
    t.match(capLine, { level: 'warn', listener: 'control-plane-api', maxConnections: 10 });
    const verifying = new Agent({ connect: { ca: mesh.controlPlane.ca.bundlePem } });
    t.teardown(() => verifying.close());
    const res = await request(`${mesh.controlPlaneUrl}/v1/trust-bundle`, { dispatcher: verifying });
    t.equal(res.statusCode, 200, 'and the API serves once they are gone');
    await res.body.dump();

    await t.test('the sidecar inbound listener has the same limits', async (t) => {
      const app = await startEchoApp(t);
      const sidecar = await mesh.startSidecar({
        workload: 'orders',
        namespace: 'shop',
        appPort: app.port,
        inboundLimits: { maxConnections: 5, handshakeTimeoutMs: 300 },
      });
      const idle = await idleConnections(sidecar.inboundPort, 8);
      const began = performance.now();
      await Promise.all(idle.map(closed));
      t.ok(performance.now() - began < 5_000, 'idle inbound connections are closed quickly');
      const metrics = await adminMetrics(sidecar.adminPort);
      t.match(metrics, /postern_connections_refused_total\{listener="inbound"\} [3-9]/);
    });
  },
);
