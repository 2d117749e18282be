import { createSocket, type Socket } from 'node:dgram';
import { lookup } from 'node:dns/promises';
import { networkInterfaces } from 'node:os';
import { setTimeout as sleep } from 'node:timers/promises';
import {
  type ConnectionLimits,
  INBOUND_LIMITS,
  OUTBOUND_LIMITS,
} from '../common/connection-limits.ts';
import { type DataPlaneOptions, startDataPlane } from './data-plane.ts';
import type { UnderscoreAction } from './http/headers.ts';
import { InboundListener } from './listeners/inbound.ts';
import { OutboundListener } from './listeners/outbound.ts';

export { DEFAULT_REDIS_TIMEOUT_MS } from './data-plane.ts';

const ADVERTISE_LOOKUP_TIMEOUT_MS = 2_000;

export interface SidecarOptions extends DataPlaneOptions {
  readonly appPort: number;
  readonly appHost: string;
  /** host:port peers dial; defaults to the inbound listener's bound address. */
  readonly advertise?: string;
  readonly inboundHost: string;
  readonly inboundPort: number;
  readonly outboundPort: number;
  /** Connection cap and timeouts of the inbound listener (default INBOUND_LIMITS). */
  readonly inboundLimits?: Partial<ConnectionLimits>;
  /** What the app may hold on the outbound listener (default OUTBOUND_LIMITS). */
  readonly outboundLimits?: Partial<ConnectionLimits>;
  /** What inbound does with request header names that have underscores (default allow; see http/headers.ts). */
  readonly headersWithUnderscores?: UnderscoreAction;
}

/**
 * The host peers should dial when --advertise is not given. A specific bind
 * address is it. A wildcard bind says nothing about where we are reachable,
 * so it is the address this host sends from toward the control plane: the
 * pod IP in a cluster, loopback beside a local control plane, and exactly the
 * address the control plane sees us connect from, which it requires a
 * registration to advertise. (A UDP socket's connect picks the route and
 * sends nothing.)
 */
async function advertisedHost(inboundHost: string, controlPlaneUrl: string): Promise<string> {
  if (inboundHost !== '0.0.0.0' && inboundHost !== '::') return inboundHost;
  const hostname = new URL(controlPlaneUrl).hostname.replace(/^\[|\]$/g, '');
  // 0.0.0.0 listens on IPv4 only, so only an IPv4 route will do; :: takes either.
  const family = inboundHost === '0.0.0.0' ? 4 : 0;
  let socket: Socket | undefined;
  const deadline = new AbortController();
  try {
    const target = await Promise.race([
      lookup(hostname, { family }),
      sleep(ADVERTISE_LOOKUP_TIMEOUT_MS, undefined, { signal: deadline.signal }).then(() => {
        throw new Error('lookup timed out');
      }),
    ]);
    // lookup returns an IP literal as it is, whatever the family asked for.
    if (family === 4 && target.family !== 4)
      throw new Error('the control plane is IPv6-only and the inbound listener IPv4-only');
    const udp = createSocket(target.family === 6 ? 'udp6' : 'udp4');
    socket = udp;
    await new Promise<void>((resolve, reject) => {
      udp.once('error', reject);
      udp.connect(Number(new URL(controlPlaneUrl).port) || 443, target.address, resolve);
    });
    const { address } = udp.address();
    return address.includes(':') ? `[${address}]` : address;
  } catch {
    // No route to the control plane yet (its name does not resolve, say):
    // the first external IPv4 address, which in a pod is the pod IP.
    for (const addresses of Object.values(networkInterfaces())) {
      const external = addresses?.find((a) => a.family === 'IPv4' && !a.internal);
      if (external) return external.address;
    }
    return '127.0.0.1';
  } finally {
    deadline.abort();
    socket?.close();
  }
}

export interface Sidecar {
  readonly inboundPort: number;
  readonly outboundPort: number;
  readonly adminPort: number;
  /** The status listener's port, when there is one (--status-port). */
  readonly statusPort: number | undefined;
  /** A graceful stop: see DataPlane.shutdown. */
  shutdown(graceMs: number): Promise<void>;
  close(): Promise<void>;
}

/** What the outbound listener gets to drain even when inbound used the whole grace period. */
const OUTBOUND_DRAIN_FLOOR_MS = 1_000;

/**
 * Starts a sidecar: the data plane (data-plane.ts) with the inbound
 * listener in front of the app and the outbound listener for its egress.
 */
export async function startSidecar(options: SidecarOptions): Promise<Sidecar> {
  const plane = await startDataPlane(options, 'sidecar', async (parts) => {
    const inbound = new InboundListener({
      ...parts,
      appHost: options.appHost,
      appPort: options.appPort,
      headersWithUnderscores: options.headersWithUnderscores,
      observers: parts.observers('inbound'),
      limits: { ...INBOUND_LIMITS, ...options.inboundLimits },
    });
    const outbound = new OutboundListener({
      ...parts,
      observers: parts.observers('outbound'),
      limits: { ...OUTBOUND_LIMITS, ...options.outboundLimits },
    });
    const inboundPort = await inbound.listen(options.inboundPort, options.inboundHost);
    const outboundPort = await outbound.listen(options.outboundPort, '127.0.0.1');
    return {
      ports: { inboundPort, outboundPort },
      advertise:
        options.advertise ??
        `${await advertisedHost(options.inboundHost, options.controlPlane)}:${inboundPort}`,
      setCertificate(svid) {
        inbound.setCertificate(svid);
        outbound.upstreams.setCertificate(svid);
      },
      retainOnly: (endpoints) => outbound.upstreams.retainOnly(endpoints),
      describeEndpoints: (endpoints) => outbound.upstreams.describe(endpoints),
      revoke(revoked, changed) {
        outbound.upstreams.dropIdentities(changed);
        return inbound.closeRevoked(revoked);
      },
      // Inbound first, outbound after: a request still being answered may
      // make calls of its own, so the app's way out stays open until every
      // inbound request is done (Istio drains inbound only, for the same
      // reason), then drains in what is left of the grace period.
      drain: async (graceMs) => {
        const started = performance.now();
        const inboundCut = await inbound.drain(graceMs);
        // A long-lived inbound stream (SSE, a tunnel) may take the whole
        // grace period: outbound still gets a moment to close politely.
        const left = Math.max(OUTBOUND_DRAIN_FLOOR_MS, graceMs - (performance.now() - started));
        return inboundCut + (await outbound.drain(left));
      },
      close: async () => {
        await Promise.all([inbound.close(), outbound.close()]);
      },
    };
  });
  return {
    inboundPort: plane.ports.inboundPort!,
    outboundPort: plane.ports.outboundPort!,
    adminPort: plane.adminPort,
    statusPort: plane.ports.statusPort,
    shutdown: (graceMs) => plane.shutdown(graceMs),
    close: () => plane.close(),
  };
}
