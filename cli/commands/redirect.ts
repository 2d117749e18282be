import { spawn } from 'node:child_process';
import { networkInterfaces } from 'node:os';
import { ConfigError } from '../../common/errors.ts';
import { parseCidr } from '../../common/policy/cidr.ts';
import { portFlag } from '../flags.ts';
import type { Command } from './command.ts';

type Values = Readonly<Record<string, string | undefined>>;

const ports = (values: Values, name: string): number[] =>
  (values[name] ?? '')
    .split(',')
    .map((p) => p.trim())
    .filter(Boolean)
    .map((text) => {
      const port = Number(text);
      if (!/^\d+$/.test(text) || port < 1 || port > 65535)
        throw new ConfigError(`--${name}: ${JSON.stringify(text)} is not a port`);
      return port;
    });

export const redirect: Command = {
  name: 'redirect',
  summary:
    "Redirects a pod's TCP traffic through its sidecar with iptables (what the injected init container runs): inbound to the inbound port, the app's outbound to the outbound port, the sidecar's own traffic exempt.",
  flags: [
    { name: 'inbound-port', help: "the sidecar's inbound port", default: '15006' },
    { name: 'outbound-port', help: "the sidecar's outbound port", default: '15001' },
    {
      name: 'proxy-uid',
      help: "the sidecar's UID, whose traffic is not redirected",
      default: '1337',
    },
    {
      name: 'exclude-inbound-ports',
      help: 'comma-separated ports reached directly (the status port)',
      default: '',
    },
    {
      name: 'exclude-outbound-ports',
      help: 'comma-separated ports the app reaches directly',
      default: '',
    },
    {
      name: 'exclude-outbound-cidrs',
      help: 'comma-separated addresses or CIDRs the app reaches directly',
      default: '',
    },
    {
      name: 'dry-run',
      help: 'true: print the iptables-restore input instead of applying it',
      default: 'false',
    },
  ],
  async run(values) {
    const uid = Number(values['proxy-uid']);
    if (!Number.isInteger(uid) || uid < 0) throw new ConfigError('--proxy-uid must be a UID');
    const cidrs = (values['exclude-outbound-cidrs'] ?? '')
      .split(',')
      .map((c) => c.trim())
      .filter(Boolean);
    const bad = cidrs.find((cidr) => !parseCidr(cidr));
    if (bad)
      throw new ConfigError(
        `--exclude-outbound-cidrs: ${JSON.stringify(bad)} is not an address or CIDR`,
      );
    const { redirectRules } = await import('../../sidecar/redirect/iptables-rules.ts');
    const options = {
      inboundPort: portFlag(values, 'inbound-port'),
      outboundPort: portFlag(values, 'outbound-port'),
      proxyUid: uid,
      excludeInboundPorts: ports(values, 'exclude-inbound-ports'),
      excludeOutboundPorts: ports(values, 'exclude-outbound-ports'),
      excludeOutboundCidrs: cidrs,
    };
    const rules = { 4: redirectRules(options, 4), 6: redirectRules(options, 6) };
    if (values['dry-run'] === 'true') {
      process.stdout.write(`# iptables-restore\n${rules[4]}# ip6tables-restore\n${rules[6]}`);
      return 0;
    }
    await restore('iptables-restore', rules[4]);
    await restore('ip6tables-restore', rules[6]).catch((error: Error) => {
      // A node without IPv6 has no ip6tables nat table: IPv4 alone is the
      // pod's traffic. A pod that has an IPv6 address would send that
      // traffic around the sidecar: fail closed, the pod does not start.
      const v6 = routableIpv6Addresses();
      if (v6.length) {
        throw new ConfigError(
          `the pod has IPv6 addresses (${v6.join(', ')}) but the IPv6 redirect rules could not be installed, so IPv6 traffic would bypass the sidecar: ${error.message}`,
        );
      }
      process.stderr.write(
        `postern redirect: IPv6 rules not installed (the pod has no IPv6 address): ${error.message}\n`,
      );
    });
    process.stderr.write('postern redirect: traffic redirected through the sidecar\n');
    return 0;
  },
};

/** Feeds `rules` to an iptables-restore binary (--noflush: other tables and rules stay). */
function restore(binary: string, rules: string): Promise<void> {
  return new Promise((resolve, reject) => {
    const child = spawn(binary, ['--noflush'], { stdio: ['pipe', 'inherit', 'pipe'] });
    let stderr = '';
    child.stderr.on('data', (chunk) => {
      stderr += chunk;
    });
    child.on('error', reject);
    child.on('exit', (code) =>
      code === 0 ? resolve() : reject(new Error(`${binary} exited ${code}: ${stderr.trim()}`)),
    );
    child.stdin.end(rules);
  });
}

/** The pod's IPv6 addresses other than loopback and link-local (which leave no node). */
export function routableIpv6Addresses(
  interfaces: ReturnType<typeof networkInterfaces> = networkInterfaces(),
): string[] {
  return Object.values(interfaces)
    .flat()
    .filter((a) => a && a.family === 'IPv6' && !a.internal && !a.address.startsWith('fe80:'))
    .map((a) => a!.address);
}
