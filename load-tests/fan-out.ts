/**
 * Snapshot fan-out cost against the number of registered sidecars, in
 * process (no sockets): the control plane's share of a policy edit.
 *
 *   npm run bench:fan-out -- [N...]      (default 100 1000 5000)
 *
 * N sidecars of N distinct workloads register with an address; then one
 * policy edit. Reports the time of that fan-out and the bytes it writes, for
 * two meshes: every workload may call every other (mesh default
 * allow-authenticated: each sidecar receives the whole registry), and each
 * workload may call one other (per-caller registries stay one entry).
 */
import type { RoutePolicy } from '../common/policy/schema.ts';
import type { MeshDefault, Snapshot } from '../common/wire.ts';
import { SnapshotHub } from '../control-plane/snapshot-hub.ts';

const spiffe = (i: number) => `spiffe://cluster.local/ns/bench/sa/svc-${i}`;

/** svc-i admits svc-(i+1): a chain, so each caller may reach exactly one service. */
function chainPolicies(n: number): RoutePolicy[] {
  return Array.from({ length: n }, (_, i) => ({
    apiVersion: 'postern.dev/v1alpha1',
    kind: 'RoutePolicy',
    metadata: { name: `svc-${i}`, namespace: 'bench' },
    spec: {
      selector: { matchLabels: { app: `svc-${i}` } },
      routes: [{ name: 'all', allow: [{ principals: [spiffe((i + 1) % n)] }] }],
    },
  })) as RoutePolicy[];
}

async function measure(n: number, meshDefault: MeshDefault, policies: RoutePolicy[]) {
  const hub = new SnapshotHub(1, meshDefault, { minFanOutIntervalMs: 0, maxWatchesPerIdentity: 1 });
  let bytes = 0;
  let sent = 0;
  for (let i = 0; i < n; i++) {
    hub.subscribe({
      workload: `svc-${i}`,
      namespace: 'bench',
      labels: { app: `svc-${i}` },
      address: `127.0.0.1:${10_000 + i}`,
      spiffeId: spiffe(i),
      certificateNotBeforeMs: 0,
      send: (snapshot: Snapshot) => {
        bytes += JSON.stringify(snapshot).length;
        sent++;
      },
      close: () => {},
    });
  }
  await new Promise((resolve) => setTimeout(resolve, 10)); // let registration fan-outs finish
  bytes = 0;
  sent = 0;
  const started = performance.now();
  hub.setPolicies(policies);
  await new Promise((resolve) => setImmediate(resolve));
  await new Promise((resolve) => setTimeout(resolve, 0));
  const ms = performance.now() - started;
  hub.close();
  return { ms, bytes, sent };
}

const sizes = process.argv.slice(2).map(Number);
console.log('sidecars  mesh                         fan-out ms   snapshots   MB written');
for (const n of sizes.length ? sizes : [100, 1000, 5000]) {
  const edit = chainPolicies(n);
  for (const [label, meshDefault, policies] of [
    [
      'all may call all',
      'allow-authenticated',
      edit.map((p) => ({ ...p, spec: { ...p.spec, mode: 'audit' as const } })),
    ],
    ['each may call one', 'deny', edit],
  ] as const) {
    const { ms, bytes, sent } = await measure(n, meshDefault, policies as RoutePolicy[]);
    console.log(
      `${String(n).padStart(8)}  ${label.padEnd(27)} ${ms.toFixed(0).padStart(10)}   ${String(sent).padStart(9)}   ${(bytes / 1048576).toFixed(1).padStart(10)}`,
    );
  }
}
