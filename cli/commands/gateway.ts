import { INBOUND_LIMITS } from '../../common/connection-limits.ts';
import { applyDataPlaneV8Settings } from '../../common/v8-settings.ts';
import { countFlag, portFlag, readAll } from '../flags.ts';
import { limitsFlag, parseLimitsFlag } from '../limits-flag.ts';
import { bytesFlag, type Command, durationFlag, untilSignalled } from './command.ts';
import { dataPlaneOptions, identityFlags, recordingFlags } from './data-plane-flags.ts';

export const gateway: Command = {
  name: 'gateway',
  summary:
    'Runs the micro API gateway: TLS for clients outside the mesh, HTTPRoute routing to mesh services over mTLS, the RoutePolicies that select it (JWT, API keys, limits) at the edge.',
  flags: [
    ...identityFlags,
    { name: 'listen-host', help: 'address the gateway listener binds', default: '0.0.0.0' },
    { name: 'listen-port', help: 'HTTPS port for outside clients', default: '8443' },
    {
      name: 'tls-cert',
      help: 'server certificate chain (PEM) outside clients see; reloaded when it changes',
      required: true,
    },
    { name: 'tls-key', help: "the certificate's private key (PEM)", required: true },
    {
      name: 'client-ca',
      help: "roots of partners' client certificates: asked for, optional, verified when presented; the CN is principal cert:<CN>",
    },
    {
      name: 'api-keys',
      help: 'API-key consumers: a YAML file (consumers: [{name, sha256}]), a Secret manifest, or a mounted Secret folder; reloaded on change',
    },
    { name: 'api-key-header', help: 'header API keys come in', default: 'x-api-key' },
    {
      name: 'trusted-proxies',
      help: 'comma-separated addresses or CIDRs whose X-Forwarded-For and Forwarded are kept (a load balancer in front)',
      default: '',
    },
    {
      name: 'max-request-bytes',
      help: 'request bodies above this get 413 (an HTTPRoute may set its own: postern.dev/max-request-bytes)',
      default: '10Mi',
    },
    {
      name: 'max-connections',
      help: 'open client connections accepted; more are closed on accept, logged and counted',
      default: String(INBOUND_LIMITS.maxConnections),
    },
    limitsFlag,
    ...recordingFlags,
  ],
  async run(values) {
    applyDataPlaneV8Settings();
    // Every flag is read before anything starts, and every problem named at once.
    const read = readAll({
      dataPlane: () => dataPlaneOptions(values),
      limits: () => parseLimitsFlag(values.limits!),
      drainMs: () => durationFlag(values, 'drain-timeout'),
      listenPort: () => portFlag(values, 'listen-port'),
      maxRequestBytes: () => bytesFlag(values, 'max-request-bytes'),
      maxConnections: () => countFlag(values, 'max-connections'),
    });
    const { limits, drainMs } = read;
    const { startGateway } = await import('../../sidecar/gateway/gateway.ts');
    const running = await startGateway({
      ...read.dataPlane,
      listenHost: values['listen-host']!,
      listenPort: read.listenPort,
      tlsCertFile: values['tls-cert']!,
      tlsKeyFile: values['tls-key']!,
      ...(values['client-ca'] ? { clientCaFile: values['client-ca'] } : {}),
      ...(values['api-keys'] ? { apiKeysFile: values['api-keys'] } : {}),
      apiKeyHeader: values['api-key-header']!,
      trustedProxies: values['trusted-proxies']!.split(',').filter(Boolean),
      maxRequestBytes: read.maxRequestBytes,
      limits: { ...limits.listener, maxConnections: read.maxConnections },
      upstreamLimits: limits.upstream,
      ...(limits.memoryLimit === undefined ? {} : { memoryLimit: limits.memoryLimit }),
    });
    return untilSignalled(() => running.shutdown(drainMs));
  },
};
