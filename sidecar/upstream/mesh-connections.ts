import { Agent as HttpsAgent } from 'node:https';
import { Pool } from 'undici';
import { type UpstreamLimits, upstreamPoolOptions } from '../../common/connection-limits.ts';
import { TLS_POLICY } from '../../common/tls-policy.ts';
import { expectSpiffeId } from '../identity/peer-verification.ts';
import { type Svid, tlsOptionsOf } from '../identity/svid.ts';
import type { Endpoint } from './service-directory.ts';

/**
 * Connections to peer sidecars, originated as mTLS with our SVID and
 * accepting only the SPIFFE ID the registry names for that endpoint. One
 * keep-alive undici pool per (address, identity) for requests, one https
 * Agent per endpoint for Upgrade tunnels. A renewed SVID, or a new trust
 * bundle (a root rotation step), replaces them all: new requests get new
 * pools that present and verify with it, the old ones finish what they carry
 * and close.
 */
export class MeshConnections {
  #svid: Svid;
  readonly #revokedUpTo: (spiffeId: string) => number | undefined;
  #pools = new Map<string, Pool>();
  #agents = new Map<string, HttpsAgent>();

  readonly #limits: UpstreamLimits;

  constructor(
    svid: Svid,
    revokedUpTo: (spiffeId: string) => number | undefined,
    limits: UpstreamLimits,
  ) {
    this.#svid = svid;
    this.#revokedUpTo = revokedUpTo;
    this.#limits = limits;
  }

  poolFor(endpoint: Endpoint): Pool {
    const key = `${endpoint.address}|${endpoint.spiffeId}`;
    let pool = this.#pools.get(key);
    if (!pool) {
      pool = new Pool(`https://${endpoint.address}`, {
        ...upstreamPoolOptions(this.#limits),
        connect: {
          ...tlsOptionsOf(this.#svid),
          ...TLS_POLICY,
          checkServerIdentity: expectSpiffeId(endpoint.spiffeId, this.#revokedUpTo),
        },
      });
      this.#pools.set(key, pool);
    }
    return pool;
  }

  agentFor(endpoint: Endpoint): HttpsAgent {
    const key = `${endpoint.address}|${endpoint.spiffeId}`;
    let agent = this.#agents.get(key);
    if (!agent) {
      agent = new HttpsAgent({
        ...tlsOptionsOf(this.#svid),
        ...TLS_POLICY,
        checkServerIdentity: expectSpiffeId(endpoint.spiffeId, this.#revokedUpTo),
      });
      this.#agents.set(key, agent);
    }
    return agent;
  }

  /** Closes connections to endpoints the registry no longer lists (pods come and go). */
  retainOnly(endpoints: readonly Endpoint[]): void {
    const live = new Set(endpoints.map((e) => `${e.address}|${e.spiffeId}`));
    for (const [key, pool] of this.#pools) {
      if (live.has(key)) continue;
      this.#pools.delete(key);
      void pool.close();
    }
    for (const [key, agent] of this.#agents) {
      if (live.has(key)) continue;
      this.#agents.delete(key);
      agent.destroy();
    }
  }

  /**
   * Closes connections to endpoints of these identities (newly revoked):
   * their certificates were checked at the handshake, so a new handshake
   * checks them against the revocation.
   */
  dropIdentities(spiffeIds: ReadonlySet<string>): void {
    for (const [key, pool] of this.#pools) {
      if (!spiffeIds.has(key.slice(key.indexOf('|') + 1))) continue;
      this.#pools.delete(key);
      void pool.destroy();
    }
    for (const [key, agent] of this.#agents) {
      if (!spiffeIds.has(key.slice(key.indexOf('|') + 1))) continue;
      this.#agents.delete(key);
      agent.destroy();
    }
  }

  setCertificate(svid: Svid): void {
    this.#svid = svid;
    const pools = this.#pools;
    const agents = this.#agents;
    this.#pools = new Map();
    this.#agents = new Map();
    for (const pool of pools.values()) void pool.close();
    for (const agent of agents.values()) agent.destroy();
  }

  async close(): Promise<void> {
    await Promise.all([...this.#pools.values()].map((pool) => pool.destroy()));
    for (const agent of this.#agents.values()) agent.destroy();
  }
}
