import { isHostPort } from '../../common/address.ts';
import type { RegistryEntry } from '../../common/wire.ts';

/** One place a request for a mesh service can go: the peer sidecar's address and the identity it must prove. */
export interface Endpoint {
  readonly service: string;
  readonly namespace: string;
  /** host:port of the peer sidecar's inbound listener. */
  readonly address: string;
  readonly spiffeId: string;
}

/**
 * The registry of a snapshot, indexed by every name an app may use for a
 * service, as Kubernetes DNS resolves them from a pod in `ownNamespace`:
 * `svc` (own namespace only), `svc.ns`, `svc.ns.svc`, `svc.ns.svc.<domain>`.
 * Built once per snapshot; a lookup is one Map read, and which of a
 * service's endpoints takes a request is the balancer's choice (balancer.ts).
 */
export class ServiceDirectory {
  readonly #byName = new Map<string, Endpoint[]>();
  /** Every endpoint once, for the balancer's bookkeeping and /config. */
  readonly endpoints: readonly Endpoint[];

  constructor(
    registry: readonly RegistryEntry[],
    ownNamespace: string,
    clusterDomain = 'cluster.local',
  ) {
    const all: Endpoint[] = [];
    for (const entry of registry) {
      // The control plane admits only host:port; an entry that is not one
      // would become a malformed URL, so it is skipped, not dialled.
      if (!isHostPort(entry.address)) continue;
      const names = [
        `${entry.service}.${entry.namespace}`,
        `${entry.service}.${entry.namespace}.svc`,
        `${entry.service}.${entry.namespace}.svc.${clusterDomain}`,
      ];
      if (entry.namespace === ownNamespace) names.push(entry.service);
      const endpoint = Object.freeze({ ...entry });
      all.push(endpoint);
      for (const name of names) {
        const endpoints = this.#byName.get(name) ?? [];
        this.#byName.set(name, endpoints);
        endpoints.push(endpoint);
      }
    }
    for (const endpoints of this.#byName.values()) Object.freeze(endpoints);
    this.endpoints = Object.freeze(all);
  }

  /** The endpoints of the service `authority` names (host or host:port; the port is ignored: a mesh service is named, not numbered). */
  resolve(authority: string): readonly Endpoint[] | undefined {
    const host = hostOf(authority).toLowerCase();
    return this.#byName.get(host.endsWith('.') ? host.slice(0, -1) : host);
  }
}

function hostOf(authority: string): string {
  if (authority.startsWith('[')) return authority.slice(0, authority.indexOf(']') + 1);
  const colon = authority.lastIndexOf(':');
  return colon === -1 ? authority : authority.slice(0, colon);
}
