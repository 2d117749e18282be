/**
 * The traffic redirection an injected pod's init container installs
 * (`postern redirect`), as iptables-restore input for the nat table of the
 * pod's network namespace, Istio's scheme with Postern's ports:
 *   - inbound: every TCP connection arriving for the pod goes to the
 *     sidecar's inbound port (15006), except the ports excluded (the
 *     status port the kubelet probes, any the pod names) and the inbound
 *     port itself;
 *   - outbound: every TCP connection the pod opens goes to the outbound
 *     port (15001), except the sidecar's own (by its UID, so what it sends
 *     on is not caught again), loopback, DNS over TCP, and the ports and
 *     CIDRs excluded. The outbound listener speaks HTTP: an app's other TCP
 *     (a database, TLS to the outside) needs its port or CIDR excluded.
 * A pure function of the options, so the rules can be read and tested
 * without a kernel; `postern redirect --dry-run` prints them.
 */
import { isIP } from 'node:net';
import { parseCidr } from '../../common/policy/cidr.ts';

export interface RedirectOptions {
  readonly inboundPort: number;
  readonly outboundPort: number;
  /** The sidecar's UID: its traffic is never redirected. */
  readonly proxyUid: number;
  readonly excludeInboundPorts: readonly number[];
  readonly excludeOutboundPorts: readonly number[];
  /** Addresses or CIDRs the pod reaches directly (a database outside the mesh, the node's metadata service). */
  readonly excludeOutboundCidrs: readonly string[];
}

const CHAINS = {
  inbound: 'POSTERN_INBOUND',
  inRedirect: 'POSTERN_IN_REDIRECT',
  output: 'POSTERN_OUTPUT',
  redirect: 'POSTERN_REDIRECT',
} as const;

/** The rules for IPv4 (`iptables-restore`) or IPv6 (`ip6tables-restore`). */
export function redirectRules(options: RedirectOptions, family: 4 | 6 = 4): string {
  const loopback = family === 4 ? '127.0.0.1/32' : '::1/128';
  const cidrs = options.excludeOutboundCidrs.filter((cidr) => {
    const parsed = parseCidr(cidr);
    return parsed && isIP(parsed.address) === family;
  });
  const lines = [
    '*nat',
    ...Object.values(CHAINS).map((chain) => `:${chain} - [0:0]`),
    `-A ${CHAINS.inRedirect} -p tcp -j REDIRECT --to-ports ${options.inboundPort}`,
    `-A ${CHAINS.redirect} -p tcp -j REDIRECT --to-ports ${options.outboundPort}`,
    `-A PREROUTING -p tcp -j ${CHAINS.inbound}`,
    `-A ${CHAINS.inbound} -p tcp --dport ${options.inboundPort} -j RETURN`,
    ...options.excludeInboundPorts.map(
      (port) => `-A ${CHAINS.inbound} -p tcp --dport ${port} -j RETURN`,
    ),
    `-A ${CHAINS.inbound} -p tcp -j ${CHAINS.inRedirect}`,
    `-A OUTPUT -p tcp -j ${CHAINS.output}`,
    `-A ${CHAINS.output} -m owner --uid-owner ${options.proxyUid} -j RETURN`,
    `-A ${CHAINS.output} -d ${loopback} -j RETURN`,
    // DNS over TCP (answers too long for UDP): the outbound listener speaks HTTP only.
    `-A ${CHAINS.output} -p tcp --dport 53 -j RETURN`,
    ...options.excludeOutboundPorts.map(
      (port) => `-A ${CHAINS.output} -p tcp --dport ${port} -j RETURN`,
    ),
    ...cidrs.map((cidr) => `-A ${CHAINS.output} -d ${cidr} -j RETURN`),
    `-A ${CHAINS.output} -p tcp -j ${CHAINS.redirect}`,
    'COMMIT',
  ];
  return `${lines.join('\n')}\n`;
}
