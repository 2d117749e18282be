/**
 * A control plane as its own process for the measurements on loopback: a
 * fresh state folder (CA and token store), the process, and an operator
 * client for `GET /v1/acks`. Shared by propagation.ts and
 * control-plane-scale.ts.
 */
import { join } from 'node:path';
import { Agent, request } from 'undici';
import { CA_FILES, CertificateAuthority } from '../certs/authority.ts';
import { generateKeyPair, privateKeyToPem } from '../certs/x509.ts';
import {
  type Child,
  freePort,
  startControlPlaneProcess,
  stopChild,
  waitUntilHealthy,
} from '../cli/processes.ts';
import type { AckStatus } from '../control-plane/snapshot-hub.ts';
import { statePaths } from '../control-plane/state.ts';
import { TokenStore } from '../control-plane/tokens.ts';

export interface BenchControlPlane {
  readonly child: Child;
  /** https://127.0.0.1:PORT */
  readonly url: string;
  /** The trust bundle sidecars verify the control plane with (--ca-file). */
  readonly caFile: string;
  /** Mints bootstrap tokens into the control plane's state folder (it watches the file). */
  readonly tokens: TokenStore;
  /** What each connected sidecar last applied, as the control plane recorded it. */
  acks(): Promise<AckStatus[]>;
  /** Closes the operator client and stops the process. */
  stop(): Promise<void>;
}

/**
 * Starts `postern control-plane` over `policiesDir` with its state in
 * `dir/state` and its log in `dir/control-plane.log`, and waits until it
 * answers. `env` passes further flags as their POSTERN_* twins.
 */
export async function startBenchControlPlane(
  dir: string,
  options: { policiesDir: string; cpu?: number; env?: Record<string, string> },
): Promise<BenchControlPlane> {
  const stateDir = join(dir, 'state');
  const ca = await CertificateAuthority.create('cluster.local');
  await ca.writeTo(statePaths(stateDir).ca);
  const apiPort = await freePort();
  const child = startControlPlaneProcess({
    policiesDir: options.policiesDir,
    stateDir,
    apiPort,
    logFile: join(dir, 'control-plane.log'),
    ...(options.cpu === undefined ? {} : { cpu: options.cpu }),
    ...(options.env ? { env: options.env } : {}),
  });
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
  const url = `https://127.0.0.1:${apiPort}`;
  try {
    await waitUntilHealthy(`${url}/v1/trust-bundle`, child, 30_000, operator);
  } catch (error) {
    await operator.close();
    await stopChild(child);
    throw error;
  }
  return {
    child,
    url,
    caFile: join(statePaths(stateDir).ca, CA_FILES.bundle),
    tokens: new TokenStore(statePaths(stateDir).tokens, ca.trustDomain),
    async acks() {
      const response = await request(`${url}/v1/acks`, { dispatcher: operator });
      return ((await response.body.json()) as { acks: AckStatus[] }).acks;
    },
    async stop() {
      await operator.close();
      await stopChild(child);
    },
  };
}
