/**
 * The filter chains, in order, and why that order. Read this file to know
 * what happens to a request between accept and forward.
 *
 * Inbound (peer sidecar or client → this sidecar → the local app); the TLS
 * handshake before the chain has already required and verified a client
 * certificate from the mesh CA:
 *   1. canonicalize: everything after matches on the canonical path, and the
 *      same path is forwarded, so nothing may look at the raw target first.
 *   2. authenticate-peer: the principal is needed by authorization.
 *   3. authorize: last, on canonical facts; the cheapest rejection of a
 *      malformed request comes before the policy lookup.
 *   (rate limits and the exfiltration guard will follow authorize: a denied
 *   request must not spend a caller's rate-limit budget.)
 *
 * Outbound (the local app → this sidecar → a peer sidecar):
 *   1. route-destination: resolves the service and rewrites an absolute-form
 *      target to origin form; nothing can be checked before the destination
 *      is known.
 *   2. canonicalize: the peer will canonicalise again; doing it here means the
 *      app learns of a bad path from its own sidecar, with a clear error.
 */
import type { Socket } from 'node:net';
import type { Logger } from '../../common/log.ts';
import type { SnapshotState } from '../policy/snapshot-state.ts';
import type { SidecarMetrics } from '../telemetry/metrics.ts';
import { authenticatePeer } from './authenticate-peer.ts';
import { authorizeRequest } from './authorize.ts';
import { canonicalize } from './canonicalize.ts';
import type { Filter } from './filter.ts';
import { routeDestination } from './route-destination.ts';

export function inboundChain(deps: {
  state: SnapshotState;
  logger: Logger;
  metrics: SidecarMetrics;
  now: () => number;
  identityOf: (socket: Socket) => string | undefined;
}): readonly Filter[] {
  return Object.freeze([
    canonicalize,
    authenticatePeer(deps.identityOf),
    authorizeRequest(deps.state, deps.logger, deps.metrics, deps.now),
  ]);
}

export function outboundChain(deps: { state: SnapshotState }): readonly Filter[] {
  return Object.freeze([routeDestination(deps.state), canonicalize]);
}
