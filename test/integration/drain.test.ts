/**
 * SIGTERM drains: a sidecar process under steady traffic is stopped and a
 * new one started on the same port, as a rolling restart does. Readiness
 * turns false at once, nothing new is accepted, requests in flight finish,
 * keep-alive clients are told Connection: close, and the process exits 0.
 * A client that retries idempotent requests when a connection fails before
 * any answer (or on 503, as the mesh's outbound path does) sees no failure;
 * no POST the app completed loses its answer.
 */
import { writeFile } from 'node:fs/promises';
import { createServer } from 'node:http';
import { join } from 'node:path';
import t from 'tap';
import { Agent, request } from 'undici';
import { freePort } from '../../cli/processes.ts';
import {
  clientCredentials,
  mtlsAgent,
  OPEN_ORDERS_POLICY,
  type SidecarProcess,
  spawnSidecar,
  startEchoApp,
  startTestMesh,
  TESTER,
  untilReady,
  workloadEnv,
} from '../helpers.ts';

t.test(
  'a sidecar restarted under steady traffic: readiness false, in-flight requests finish, exit 0, no failed or lost request',
  async (t) => {
    const mesh = await startTestMesh(t, OPEN_ORDERS_POLICY);
    const app = await startEchoApp(t);
    // What the app answered, by request id: a POST it completed must reach the client.
    const completed = new Set<string>();
    app.server.on('request', (req, res) =>
      res.on('finish', () => {
        if (req.method === 'POST')
          completed.add(new URL(req.url!, 'http://app').searchParams.get('id')!);
      }),
    );
    const inboundPort = await freePort();
    const env = await workloadEnv(mesh, 'orders', app.port);
    const start = () =>
      spawnSidecar(t, {
        ...env,
        POSTERN_INBOUND_PORT: String(inboundPort),
        POSTERN_DRAIN_TIMEOUT: '10s',
      });
    const first: SidecarProcess = await start();
    await untilReady(first.adminPort);
    const credentials = await clientCredentials(mesh.controlPlane.ca, TESTER);
    const agent = new Agent({
      connect: { ...credentials, rejectUnauthorized: true, checkServerIdentity: () => undefined },
      keepAliveTimeout: 30_000,
    });
    t.teardown(() => agent.close());

    const stats = {
      gets: 0,
      getRetries: 0,
      getFailures: 0,
      posts: 0,
      postsAnswered: 0,
      postsRefused: 0,
    };
    const answeredPosts = new Set<string>();
    const closeHeaders: string[] = [];
    let stopping = false;
    let id = 0;
    const url = (path: string) => `https://127.0.0.1:${inboundPort}${path}`;
    /**
     * A GET, retried when the connection fails before any answer or the
     * answer is 503, as the mesh's own outbound path retries idempotent
     * requests (the new process answers 503 until its first snapshot).
     */
    const get = async () => {
      stats.gets++;
      for (let attempt = 0; attempt < 100; attempt++) {
        try {
          const res = await request(url('/orders?delay=50'), { dispatcher: agent });
          await res.body.dump();
          if (res.headers.connection === 'close') closeHeaders.push('GET');
          if (res.statusCode === 503) throw new Error('unavailable: retried');
          if (res.statusCode !== 200) stats.getFailures++;
          return;
        } catch {
          stats.getRetries++;
          await new Promise((resolve) => setTimeout(resolve, 20));
        }
      }
      stats.getFailures++;
    };
    /** A POST, never retried: it either got its answer or was refused before the app saw it. */
    const post = async () => {
      const mine = String(++id);
      stats.posts++;
      try {
        const res = await request(url(`/orders?id=${mine}&delay=100`), {
          method: 'POST',
          dispatcher: agent,
          body: 'order',
        });
        await res.body.dump();
        if (res.statusCode === 200) {
          stats.postsAnswered++;
          answeredPosts.add(mine);
        }
      } catch {
        stats.postsRefused++;
        await new Promise((resolve) => setTimeout(resolve, 20));
      }
    };
    const worker = async (call: () => Promise<void>) => {
      while (!stopping) await call();
    };
    const traffic = Promise.all([
      worker(get),
      worker(get),
      worker(get),
      worker(post),
      worker(post),
    ]);

    await new Promise((resolve) => setTimeout(resolve, 1_000));
    first.child.kill('SIGTERM');
    // Readiness turns false at once, while the drain goes on.
    let notReady = false;
    for (let i = 0; i < 20 && !notReady; i++) {
      try {
        const res = await request(`http://127.0.0.1:${first.adminPort}/healthz/ready`);
        notReady = res.statusCode === 503 && /draining/.test(await res.body.text());
      } catch {
        break;
      }
    }
    const exitCode = await new Promise<number | null>((resolve) =>
      first.child.once('exit', resolve),
    );
    const second = await start();
    await untilReady(second.adminPort);
    await new Promise((resolve) => setTimeout(resolve, 1_000));
    stopping = true;
    await traffic;

    t.ok(notReady, 'readiness said draining');
    t.equal(exitCode, 0, 'the drained process exits 0');
    t.match(first.log(), /shutting down: draining open requests/);
    t.notMatch(first.log(), /connections cut/, 'every connection finished within the grace period');
    t.ok(closeHeaders.length > 0, 'keep-alive clients were told Connection: close');
    t.equal(
      stats.getFailures,
      0,
      `no GET failed (${stats.gets} sent, ${stats.getRetries} retried)`,
    );
    const lost = [...completed].filter((done) => !answeredPosts.has(done));
    t.same(
      lost,
      [],
      `no POST the app completed lost its answer (${stats.posts} sent, ${stats.postsAnswered} answered, ${stats.postsRefused} refused before the app)`,
    );
    t.comment(JSON.stringify(stats));
    await writeFile(join(mesh.dir, 'drain-stats.json'), JSON.stringify(stats));
  },
);

t.test(
  'regression: while a sidecar drains, a request still being answered can call out through it, and new connections are refused',
  async (t) => {
    const mesh = await startTestMesh(
      t,
      [OPEN_ORDERS_POLICY, OPEN_ORDERS_POLICY.replace(/orders/g, 'frontend')].join('\n---\n'),
    );
    const orders = await startEchoApp(t);
    const ordersSidecar = await mesh.startSidecar({
      workload: 'orders',
      namespace: 'shop',
      appPort: orders.port,
    });
    await untilReady(ordersSidecar.adminPort);
    // frontend's app answers /checkout by calling orders through its own
    // sidecar, on a new connection, after a while: by then SIGTERM has come.
    let outboundPort = 0;
    const app = createServer(async (_req, res) => {
      await new Promise((resolve) => setTimeout(resolve, 600));
      try {
        const called = await request(`http://127.0.0.1:${outboundPort}/orders`, {
          headers: { host: 'orders' },
          dispatcher: new Agent(),
        });
        await called.body.dump();
        res.end(`orders answered ${called.statusCode}`);
      } catch (error) {
        res.statusCode = 502;
        res.end(`orders unreachable: ${(error as Error).message}`);
      }
    });
    await new Promise<void>((resolve) => app.listen(0, '127.0.0.1', resolve));
    t.teardown(() => app.close());
    const frontend = await spawnSidecar(t, {
      ...(await workloadEnv(mesh, 'frontend', (app.address() as { port: number }).port)),
      POSTERN_DRAIN_TIMEOUT: '10s',
    });
    outboundPort = frontend.outboundPort;
    await untilReady(frontend.adminPort);
    const credentials = await clientCredentials(mesh.controlPlane.ca, TESTER);
    const checkout = async () => {
      const agent = mtlsAgent(credentials);
      try {
        const res = await request(`https://127.0.0.1:${frontend.inboundPort}/checkout`, {
          dispatcher: agent,
        });
        return { status: res.statusCode, body: await res.body.text() };
      } finally {
        await agent.close();
      }
    };
    // frontend knows orders once its snapshot lists it.
    for (let i = 0; i < 50; i++) {
      if ((await checkout()).body === 'orders answered 200') break;
      await new Promise((resolve) => setTimeout(resolve, 100));
    }

    const inFlight = checkout();
    await new Promise((resolve) => setTimeout(resolve, 200));
    const exited = new Promise<number | null>((resolve) => frontend.child.once('exit', resolve));
    frontend.child.kill('SIGTERM');
    await new Promise((resolve) => setTimeout(resolve, 100));
    const late = await checkout().then(
      (answer) => `answered ${answer.status}`,
      (error: Error & { code?: string }) => error.code ?? error.message,
    );
    t.equal(late, 'ECONNREFUSED', 'a new connection to the draining sidecar is refused');
    t.same(
      await inFlight,
      { status: 200, body: 'orders answered 200' },
      'the request in flight made its call out and was answered',
    );
    t.equal(await exited, 0, 'then the sidecar exits 0');
  },
);
