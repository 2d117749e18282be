/**
 * The injected pod's traffic redirection, for real: two "pods", each a
 * network namespace on a bridge with its app, its sidecar running as the
 * proxy UID (1337) and the rules `postern redirect` installs (as the init
 * container does, as root in the pod's namespace). The control plane runs
 * in this process on the bridge's address. Each app calls the other by
 * service name at the other's pod IP, with no proxy setting: the rules send
 * it through its sidecar, mTLS carries it, and the other's sidecar admits
 * it by policy. Anything else reaching an app's port is turned to its
 * sidecar, which refuses plaintext.
 *
 * Needs root, `ip netns` and iptables; skipped with the reason where the
 * machine cannot (CI installs iptables, as it does redis-server).
 */
import { type ChildProcess, execFileSync, spawn } from 'node:child_process';
import { chmod, readFile, writeFile } from 'node:fs/promises';
import { get } from 'node:http';
import { join } from 'node:path';
import t from 'tap';
import { CHILD_NODE_ARGS, POSTERN_BIN } from '../../cli/processes.ts';
import { eventually, startTestMesh } from '../helpers.ts';

const SUFFIX = String(process.pid % 250);
const SUBNET = `10.213.${SUFFIX}`;
const BRIDGE = `pst${SUFFIX}br`;
const PODS = {
  orders: { ns: `pst${SUFFIX}o`, ip: `${SUBNET}.2`, veth: `pst${SUFFIX}o` },
  frontend: { ns: `pst${SUFFIX}f`, ip: `${SUBNET}.1`, veth: `pst${SUFFIX}f` },
} as const;
type PodName = keyof typeof PODS;

const ip = (...args: string[]) => execFileSync('ip', args, { stdio: 'pipe' });

function unavailable(): string | undefined {
  if (process.getuid?.() !== 0) return 'needs root for network namespaces and iptables';
  for (const binary of ['ip', 'iptables-restore', 'setpriv']) {
    try {
      execFileSync('sh', ['-c', `command -v ${binary}`], { stdio: 'ignore' });
    } catch {
      return `${binary} is not installed`;
    }
  }
  try {
    ip('netns', 'add', `pst${SUFFIX}probe`);
    ip('netns', 'del', `pst${SUFFIX}probe`);
  } catch (error) {
    return `cannot create a network namespace here: ${(error as Error).message}`;
  }
  return undefined;
}

function network(): () => void {
  const teardown = () => {
    for (const pod of Object.values(PODS)) {
      try {
        ip('netns', 'del', pod.ns);
      } catch {}
    }
    try {
      ip('link', 'del', BRIDGE);
    } catch {}
  };
  teardown();
  ip('link', 'add', BRIDGE, 'type', 'bridge');
  ip('addr', 'add', `${SUBNET}.254/24`, 'dev', BRIDGE);
  ip('link', 'set', BRIDGE, 'up');
  for (const pod of Object.values(PODS)) {
    ip('netns', 'add', pod.ns);
    ip('link', 'add', `${pod.veth}0`, 'type', 'veth', 'peer', 'name', `${pod.veth}1`);
    ip('link', 'set', `${pod.veth}1`, 'master', BRIDGE, 'up');
    ip('link', 'set', `${pod.veth}0`, 'netns', pod.ns);
    const inPod = (...args: string[]) => ip('netns', 'exec', pod.ns, 'ip', ...args);
    inPod('addr', 'add', `${pod.ip}/24`, 'dev', `${pod.veth}0`);
    inPod('link', 'set', `${pod.veth}0`, 'up');
    inPod('link', 'set', 'lo', 'up');
    inPod('route', 'add', 'default', 'via', `${SUBNET}.254`);
  }
  return teardown;
}

/** Node in a pod's namespace, as root (the app, the init container) or as the proxy UID (the sidecar). */
function inPod(
  pod: PodName,
  args: string[],
  env: Record<string, string> = {},
  asProxy = false,
): ChildProcess {
  const { NODE_OPTIONS: _o, NODE_V8_COVERAGE: _c, ...inherited } = process.env;
  const node = [process.execPath, ...CHILD_NODE_ARGS, ...args];
  const command = asProxy
    ? ['setpriv', '--reuid=1337', '--regid=1337', '--clear-groups', '--', ...node]
    : node;
  return spawn('ip', ['netns', 'exec', PODS[pod].ns, ...command], {
    env: { ...inherited, ...env },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
}

const ECHO_APP = `
const { createServer } = require('node:http');
createServer((req, res) => {
  res.writeHead(200, { 'content-type': 'application/json' });
  res.end(JSON.stringify({ app: process.env.APP, url: req.url, principal: req.headers['x-postern-principal'] ?? null }));
}).listen(8080, '0.0.0.0');`;

/** A plain HTTP GET from inside a pod, by IP with a Host header: what an app's client does. */
const CALL = `
const [host, address, path] = process.argv.slice(-3);
require('node:http').get({ host: address, port: 8080, path, headers: { host } }, (res) => {
  let body = '';
  res.on('data', (c) => (body += c));
  res.on('end', () => console.log(JSON.stringify({ status: res.statusCode, body })));
}).on('error', (e) => console.log(JSON.stringify({ error: e.code ?? e.message })));`;

function output(child: ChildProcess): Promise<string> {
  return new Promise((resolve) => {
    let out = '';
    child.stdout!.on('data', (chunk) => {
      out += chunk;
    });
    child.on('exit', () => resolve(out));
  });
}

const allow = (service: string, caller: string) => `
apiVersion: postern.dev/v1alpha1
kind: RoutePolicy
metadata: { name: ${service}, namespace: shop }
spec:
  selector: { matchLabels: { app: ${service} } }
  routes:
    - name: all
      match: { path: { prefix: / } }
      allow: [{ principals: ["spiffe://cluster.local/ns/shop/sa/${caller}"] }]
`;

const reason = unavailable();
t.test(
  'two pods in network namespaces with the redirect rules: each app reaches the other only through its sidecar',
  { skip: reason ?? false },
  async (t) => {
    t.teardown(network());
    const mesh = await startTestMesh(
      t,
      `${allow('orders', 'frontend')}\n---\n${allow('frontend', 'orders')}`,
      { controlPlane: { host: `${SUBNET}.254` } },
    );
    const controlPlane = `https://${SUBNET}.254:${mesh.controlPlane.apiPort}`;
    // The sidecars run as the proxy UID: the test's folder (the CA file, the tokens) must be theirs to read.
    await chmod(mesh.dir, 0o755);
    const children: ChildProcess[] = [];
    t.teardown(() => {
      for (const child of children) child.kill('SIGKILL');
    });
    for (const pod of Object.keys(PODS) as PodName[]) {
      const token = join(mesh.dir, `${pod}.token`);
      await writeFile(token, await readFile(await mesh.tokenFor(pod, 'shop')), { mode: 0o644 });
      children.push(inPod(pod, ['-e', ECHO_APP], { APP: pod }));
      const sidecar = inPod(
        pod,
        [POSTERN_BIN, 'sidecar'],
        {
          POSTERN_CONTROL_PLANE: controlPlane,
          POSTERN_CA_FILE: mesh.caFile,
          POSTERN_BOOTSTRAP_TOKEN_FILE: token,
          POSTERN_APP_PORT: '8080',
          POSTERN_WORKLOAD: pod,
          POSTERN_NAMESPACE: 'shop',
          POSTERN_SERVICE_ACCOUNT: pod,
          POSTERN_LABELS: `app=${pod}`,
          POSTERN_USAGE_REPORTS: 'off',
        },
        true,
      );
      children.push(sidecar);
      // The init container's step: the rules, installed as root in the pod's namespace.
      const rules = inPod(pod, [POSTERN_BIN, 'redirect']);
      const rulesExit = await new Promise<number | null>((resolve) => rules.on('exit', resolve));
      t.equal(rulesExit, 0, `${pod}: postern redirect installed the rules`);
    }
    const call = async (from: PodName, host: string, address: string, path = '/orders') =>
      JSON.parse(await output(inPod(from, ['-e', CALL, host, address, path]))) as {
        status?: number;
        body?: string;
        error?: string;
      };

    // Ready: both sidecars hold certificates and snapshots naming each other.
    await eventually(
      async () =>
        (await call('frontend', 'orders.shop.svc.cluster.local', PODS.orders.ip)).status === 200,
      30_000,
    );
    const there = await call('frontend', 'orders.shop.svc.cluster.local', PODS.orders.ip);
    t.same(
      JSON.parse(there.body!),
      {
        app: 'orders',
        url: '/orders',
        principal: 'spiffe://cluster.local/ns/shop/sa/frontend',
      },
      "frontend's plain call reached orders through both sidecars, as frontend's identity",
    );
    const back = await call('orders', 'frontend.shop', PODS.frontend.ip, '/home');
    t.equal(back.status, 200, 'and orders reaches frontend the same way');
    t.equal(JSON.parse(back.body!).principal, 'spiffe://cluster.local/ns/shop/sa/orders');

    const unknown = await call('frontend', 'billing.shop', PODS.orders.ip);
    t.equal(
      unknown.status,
      502,
      "a host outside the registry goes nowhere: the app's egress is the sidecar's to allow",
    );

    // From outside any pod (the bridge's host), straight at orders' app port: its sidecar takes it, and refuses plaintext.
    const direct = await new Promise<number>((resolve) => {
      get({ host: PODS.orders.ip, port: 8080, path: '/orders' }, (res) => {
        res.resume();
        resolve(res.statusCode ?? 0);
      }).on('error', () => resolve(0));
    });
    t.not(
      direct,
      200,
      `a plain call to the app's port is turned to its sidecar and refused (${direct || 'connection closed'})`,
    );
  },
);
