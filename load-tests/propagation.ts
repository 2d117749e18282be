/**
 * Policy propagation: time from saving a RoutePolicy file to each sidecar
 * enforcing it.
 *
 *   npm run bench:propagation -- [SIDECARS] [EDITS]     (defaults: 1 and 50 sidecars, 20 edits)
 *
 * Runs a control plane and SIDECARS sidecars as separate processes on
 * loopback, then saves the policy file EDITS times. For each save it takes,
 * per sidecar, the instant the control plane received that sidecar's ack of
 * the new snapshot (a sidecar acks after it has compiled and swapped the
 * snapshot in, i.e. once it enforces it) minus the instant the save
 * completed. Prints p50, p99 and max over all (edit, sidecar) pairs.
 */
import { mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { type Child, POSTERN_BIN, startChild, stopChild } from '../cli/processes.ts';
import { startBenchControlPlane } from './control-plane-process.ts';
import { percentile } from './statistics.ts';

const policy = (edit: number) => `apiVersion: postern.dev/v1alpha1
kind: RoutePolicy
metadata: { name: bench, namespace: bench }
spec:
  selector: { matchLabels: { app: bench } }
  routes:
    - name: api
      match: { path: { prefix: /api } }
      allow:
        - principals: [spiffe://cluster.local/ns/bench/sa/client-${edit}]
`;

async function measure(sidecars: number, edits: number): Promise<void> {
  const dir = await mkdtemp(join(tmpdir(), 'postern-propagation-'));
  const children: Child[] = [];
  const policiesDir = join(dir, 'policies');
  await mkdir(policiesDir, { recursive: true });
  await writeFile(join(policiesDir, 'bench.yaml'), policy(0));
  const controlPlane = await startBenchControlPlane(dir, { policiesDir });
  const { tokens, acks } = controlPlane;
  try {
    for (let i = 0; i < sidecars; i++) {
      const tokenFile = join(dir, `svc-${i}.token`);
      await writeFile(
        tokenFile,
        await tokens.create(`svc-${i}`, 'bench', `svc-${i}`, undefined, { app: 'bench' }),
      );
      children.push(
        startChild(
          `sidecar ${i}`,
          [POSTERN_BIN, 'sidecar'],
          {
            POSTERN_CONTROL_PLANE: controlPlane.url,
            POSTERN_CA_FILE: controlPlane.caFile,
            POSTERN_BOOTSTRAP_TOKEN_FILE: tokenFile,
            POSTERN_APP_PORT: '9', // never called: this measures the control path only
            POSTERN_WORKLOAD: `svc-${i}`,
            POSTERN_NAMESPACE: 'bench',
            POSTERN_SERVICE_ACCOUNT: `svc-${i}`,
            POSTERN_LABELS: 'app=bench',
            POSTERN_INBOUND_HOST: '127.0.0.1',
            POSTERN_INBOUND_PORT: '0',
            POSTERN_OUTBOUND_PORT: '0',
            POSTERN_ADMIN_PORT: '0',
          },
          join(dir, `sidecar-${i}.log`),
        ),
      );
    }
    // Wait until every sidecar has applied some snapshot, and the registry has settled.
    const deadline = Date.now() + 120_000;
    let previous = new Map<string, string>();
    for (;;) {
      const applied = (await acks()).filter((a) => a.status === 'applied');
      const latest = new Map(applied.map((a) => [a.workload, a.hash]));
      if (latest.size === sidecars && [...latest].every(([w, h]) => previous.get(w) === h)) break;
      if (Date.now() > deadline)
        throw new Error(`only ${latest.size} of ${sidecars} sidecars came up`);
      previous = latest;
      await new Promise((r) => setTimeout(r, 500));
    }

    const samples: number[] = [];
    for (let edit = 1; edit <= edits; edit++) {
      const before = new Map((await acks()).map((a) => [a.workload, a.hash]));
      await writeFile(join(policiesDir, 'bench.yaml'), policy(edit));
      const savedAt = Date.now();
      const seen = new Map<string, number>();
      while (seen.size < sidecars) {
        if (Date.now() - savedAt > 30_000)
          throw new Error(`edit ${edit}: only ${seen.size} of ${sidecars} sidecars applied it`);
        for (const ack of await acks()) {
          if (
            ack.status === 'applied' &&
            ack.hash !== before.get(ack.workload) &&
            !seen.has(ack.workload)
          ) {
            seen.set(ack.workload, Date.parse(ack.at) - savedAt);
          }
        }
        await new Promise((r) => setTimeout(r, 5));
      }
      samples.push(...seen.values());
      await new Promise((r) => setTimeout(r, 200)); // let the fleet go quiet between edits
    }
    samples.sort((a, b) => a - b);
    console.log(
      `${String(sidecars).padStart(8)} sidecars  ${String(edits).padStart(3)} edits  p50 ${percentile(samples, 50)} ms  p99 ${percentile(samples, 99)} ms  max ${samples.at(-1)} ms`,
    );
  } finally {
    for (const child of children.reverse()) await stopChild(child);
    await controlPlane.stop();
    await rm(dir, { recursive: true, force: true });
  }
}

const [sidecarsArg, editsArg] = process.argv.slice(2);
const edits = Number(editsArg ?? 20);
for (const sidecars of sidecarsArg ? [Number(sidecarsArg)] : [1, 50])
  await measure(sidecars, edits);
