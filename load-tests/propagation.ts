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
import { Agent, request } from 'undici';
import { CA_FILES, CertificateAuthority } from '../certs/authority.ts';
import { generateKeyPair, privateKeyToPem } from '../certs/x509.ts';
import {
  type Child,
  freePort,
  POSTERN_BIN,
  startChild,
  startControlPlaneProcess,
  stopChild,
  waitUntilHealthy,
} from '../cli/processes.ts';
import { statePaths } from '../control-plane/state.ts';
import { TokenStore } from '../control-plane/tokens.ts';

interface Ack {
  readonly workload: string;
  readonly version: string;
  readonly hash: string;
  readonly status: string;
  readonly at: string;
}

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

function percentile(sorted: number[], p: number): number {
  return sorted[Math.min(sorted.length - 1, Math.ceil((p / 100) * sorted.length) - 1)]!;
}

async function measure(sidecars: number, edits: number): Promise<void> {
  const dir = await mkdtemp(join(tmpdir(), 'postern-propagation-'));
  const children: Child[] = [];
  try {
    const stateDir = join(dir, 'state');
    const policiesDir = join(dir, 'policies');
    await mkdir(policiesDir, { recursive: true });
    await writeFile(join(policiesDir, 'bench.yaml'), policy(0));
    const ca = await CertificateAuthority.create('cluster.local');
    await ca.writeTo(statePaths(stateDir).ca);
    const tokens = new TokenStore(statePaths(stateDir).tokens, 'cluster.local');
    const apiPort = await freePort();
    const controlPlane = startControlPlaneProcess({
      policiesDir,
      stateDir,
      apiPort,
      logFile: join(dir, 'control-plane.log'),
    });
    children.push(controlPlane);
    const keys = await generateKeyPair();
    const operator = new Agent({
      connect: {
        ca: ca.bundlePem,
        cert: await ca.issue(keys.publicKey, {
          // the control plane's default --operators identity
          uris: ['spiffe://cluster.local/ns/postern-system/sa/operator'],
          ttlMs: 3600_000,
        }),
        key: privateKeyToPem(keys.privateKey),
      },
    });
    await waitUntilHealthy(
      `https://127.0.0.1:${apiPort}/v1/trust-bundle`,
      controlPlane,
      30_000,
      operator,
    );
    const acks = async (): Promise<Ack[]> =>
      (
        (await (
          await request(`https://127.0.0.1:${apiPort}/v1/acks`, { dispatcher: operator })
        ).body.json()) as { acks: Ack[] }
      ).acks;

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
            POSTERN_CONTROL_PLANE: `https://127.0.0.1:${apiPort}`,
            POSTERN_CA_FILE: join(statePaths(stateDir).ca, CA_FILES.bundle),
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
    await operator.close();
  } finally {
    for (const child of children.reverse()) await stopChild(child);
    await rm(dir, { recursive: true, force: true });
  }
}

const [sidecarsArg, editsArg] = process.argv.slice(2);
const edits = Number(editsArg ?? 20);
for (const sidecars of sidecarsArg ? [Number(sidecarsArg)] : [1, 50])
  await measure(sidecars, edits);
