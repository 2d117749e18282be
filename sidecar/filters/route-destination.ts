import type { SnapshotState } from '../policy/snapshot-state.ts';
import type { Filter } from './filter.ts';

/**
 * Outbound: finds the mesh service the app is calling, from the absolute-form
 * target an explicit proxy client sends (`GET http://orders/x`) or else the
 * Host header, and sets the canonical origin-form target to forward.
 */
/** Longer authorities are cut: an app's typo or an attacker's payload must not grow usage records. */
const MAX_AUTHORITY = 255;

/** `host` as `host:80` (what a plain http:// call without a port reaches). */
const withPort = (authority: string) => (/:\d+$/.test(authority) ? authority : `${authority}:80`);

export function routeDestination(state: SnapshotState): Filter {
  return {
    name: 'route-destination',
    onRequest(exchange) {
      const req = exchange.req;
      const url = req.url ?? '';
      let authority: string | undefined;
      if (url.startsWith('http://')) {
        const slash = url.indexOf('/', 7);
        authority = slash === -1 ? url.slice(7) : url.slice(7, slash);
        req.url = slash === -1 ? '/' : url.slice(slash);
      } else if (/^[a-z][a-z0-9+.-]*:/i.test(url)) {
        return {
          status: 400,
          code: 'POSTERN_UNSUPPORTED_SCHEME',
          message:
            'the outbound listener takes plain http:// targets; the sidecar adds mTLS itself',
          close: true,
        };
      } else authority = req.headers.host;
      if (!authority) {
        return {
          status: 400,
          code: 'POSTERN_NO_DESTINATION',
          message: 'the request names no host',
          close: true,
        };
      }
      const applied = state.current;
      if (!applied)
        return {
          status: 503,
          code: 'POSTERN_NOT_READY',
          message: 'the sidecar has no service registry yet',
        };
      const service = applied.directory.resolve(authority);
      if (!service) {
        // Egress outside the mesh is refused, and recorded: the detectors watch where apps try to send.
        exchange.unknownDestination = withPort(authority.toLowerCase().slice(0, MAX_AUTHORITY));
        return {
          status: 502,
          code: 'POSTERN_UNKNOWN_DESTINATION',
          // The control plane sends each workload only the services whose
          // policies admit it, so "not in the registry" covers both cases.
          message: `${authority} is not in this workload's mesh registry: no such mesh service, or none of its policies admits this workload; egress outside the mesh is not allowed`,
        };
      }
      exchange.service = service;
      return undefined;
    },
  };
}
