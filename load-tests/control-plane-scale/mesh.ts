/**
 * The simulated mesh. N sidecars are N/10 services of 10 replicas each, in
 * one namespace. Service i's RoutePolicy admits, by SPIFFE ID, the next
 * three services (i+1, i+2, i+3, round the ring), so every caller may reach
 * three services and receives a 30-endpoint registry whatever N is: policies
 * as specific as a platform team writes them, which keeps per-caller
 * registries small (the fan-out report shows what an everyone-calls-everyone
 * mesh costs instead).
 *
 * One platform policy with no selector picks every workload of the
 * namespace: Prometheus may scrape /metrics, and the on-call engineer holds
 * a just-in-time grant on /debug. Edit k moves that grant's expiry, the kind
 * of edit that is made often: it changes every sidecar's snapshot and no
 * registry.
 */
import { writeFile } from 'node:fs/promises';
import { join } from 'node:path';

export const NAMESPACE = 'bench';
export const REPLICAS = 10;
/** How many other services each service admits. */
export const CALLERS = 3;
/** The platform policy's file, the one every edit saves. */
export const PLATFORM_FILE = 'platform.yaml';

export const serviceName = (service: number) => `svc-${service}`;
export const spiffeIdOf = (service: number) =>
  `spiffe://cluster.local/ns/${NAMESPACE}/sa/${serviceName(service)}`;
export const servicesFor = (sidecars: number) => sidecars / REPLICAS;
/** Sidecar i is replica i % REPLICAS of service floor(i / REPLICAS). */
export const serviceOf = (sidecar: number) => Math.floor(sidecar / REPLICAS);

/**
 * Each simulated sidecar advertises its own port on 127.0.0.1 (nothing
 * listens there: nobody calls it). On loopback the control plane tells
 * replicas apart by the whole address, so distinct ports are distinct pods.
 */
export const addressOf = (sidecar: number, firstPort: number) => `127.0.0.1:${firstPort + sidecar}`;

/** The services whose principals `service` admits. */
export function callersOf(service: number, services: number): number[] {
  return Array.from(
    { length: Math.min(CALLERS, services - 1) },
    (_, k) => (service + k + 1) % services,
  );
}

/** Registry entries every sidecar should hold: the ring is symmetric, so each caller is admitted by as many services as it admits. */
export const registrySize = (services: number) => REPLICAS * Math.min(CALLERS, services - 1);

function servicePolicy(service: number, services: number): string {
  const principals = callersOf(service, services).map(spiffeIdOf).join(', ');
  return `apiVersion: postern.dev/v1alpha1
kind: RoutePolicy
metadata: { name: ${serviceName(service)}, namespace: ${NAMESPACE} }
spec:
  selector: { matchLabels: { app: ${serviceName(service)} } }
  routes:
    - name: api
      match: { path: { prefix: /api } }
      allow:
        - principals: [${principals}]
    - name: health
      match: { methods: [GET], path: { exact: /healthz } }
      allow:
        - principals: [spiffe://cluster.local/ns/monitoring/sa/blackbox]
`;
}

/** The platform policy as of edit `edit` (0: before any): the on-call grant ends `edit` hours later than at first. */
export function platformPolicy(edit: number): string {
  const expires = new Date(Date.UTC(2099, 0, 1) + edit * 3600_000).toISOString();
  return `apiVersion: postern.dev/v1alpha1
kind: RoutePolicy
metadata: { name: platform, namespace: ${NAMESPACE} }
spec:
  routes:
    - name: metrics
      match: { methods: [GET], path: { exact: /metrics } }
      allow:
        - principals: [spiffe://cluster.local/ns/monitoring/sa/prometheus]
    - name: debug
      match: { path: { prefix: /debug } }
      allow:
        - principals: [spiffe://cluster.local/ns/ops/sa/oncall]
          expiresAt: "${expires.replace('.000Z', 'Z')}"
`;
}

/** One file per service, and the platform policy. */
export async function writeMeshPolicies(dir: string, services: number): Promise<void> {
  for (let service = 0; service < services; service++)
    await writeFile(join(dir, `${serviceName(service)}.yaml`), servicePolicy(service, services));
  await writeFile(join(dir, PLATFORM_FILE), platformPolicy(0));
}
