import { INBOUND_LIMITS } from '../../common/connection-limits.ts';
import { ConfigError } from '../../common/errors.ts';
import { DEFAULT_TRUST_DOMAIN } from '../../common/spiffe.ts';
import { applyDataPlaneV8Settings } from '../../common/v8-settings.ts';
import { parseLabels } from '../../common/wire.ts';
import {
  DEFAULT_UNDERSCORE_ACTION,
  isUnderscoreAction,
  UNDERSCORE_ACTIONS,
} from '../../sidecar/http/headers.ts';
import { countFlag, portFlag } from '../flags.ts';
import { type Command, durationFlag, untilSignalled } from './command.ts';

export const sidecar: Command = {
  name: 'sidecar',
  summary:
    'Runs a sidecar beside one app: mTLS inbound, mTLS-originating outbound, admin endpoints.',
  flags: [
    {
      name: 'control-plane',
      help: 'control plane URL, e.g. https://127.0.0.1:15010',
      required: true,
    },
    { name: 'ca-file', help: 'PEM roots that verify the control plane', required: true },
    {
      name: 'bootstrap-token-file',
      help: "file holding this workload's bootstrap token",
      required: true,
    },
    { name: 'app-port', help: 'port of the local app', required: true },
    { name: 'app-host', help: 'address of the local app', default: '127.0.0.1' },
    { name: 'workload', help: 'workload (service) name', required: true },
    { name: 'namespace', help: 'namespace', required: true },
    { name: 'service-account', help: 'service account', required: true },
    { name: 'trust-domain', help: 'SPIFFE trust domain', default: DEFAULT_TRUST_DOMAIN },
    {
      name: 'labels',
      help: 'workload labels, k=v,k2=v2; they come from the bootstrap token (token create --labels), and when given here must equal those',
      default: '',
    },
    {
      name: 'advertise',
      help: 'host:port peers dial for this workload (default: the inbound address)',
    },
    { name: 'inbound-host', help: 'address the inbound listener binds', default: '0.0.0.0' },
    { name: 'inbound-port', help: 'inbound (mTLS) port', default: '15006' },
    {
      name: 'outbound-port',
      help: "outbound port on 127.0.0.1 (the app's HTTP_PROXY)",
      default: '15001',
    },
    { name: 'admin-port', help: 'admin port on 127.0.0.1', default: '15000' },
    {
      name: 'headers-with-underscores',
      help: `inbound header names with underscores (x_user, which CGI servers read as x-user): ${UNDERSCORE_ACTIONS.join(' | ')}; twins of the sidecar's own headers always go`,
      default: DEFAULT_UNDERSCORE_ACTION,
    },
    {
      name: 'max-inbound-connections',
      help: 'open inbound connections accepted; more are closed on accept, logged and counted',
      default: String(INBOUND_LIMITS.maxConnections),
    },
    { name: 'pod', help: "this replica's name in usage reports (in a cluster, the pod's)" },
    {
      name: 'usage-window',
      help: 'usage reports to the control plane: one per window of this length',
      default: '1m',
    },
    {
      name: 'usage-reports',
      help: 'on | off: off keeps no usage record (and the exfiltration detectors see nothing of this workload)',
      default: 'on',
    },
    {
      name: 'access-log',
      help: 'one JSON line per request: off | stdout | stderr | a file path (appended to)',
      default: 'off',
    },
    {
      name: 'redis-timeout',
      help: "how long a global rate-limit check waits for Redis before this replica's share decides",
      default: '50ms',
    },
  ],
  async run(values) {
    applyDataPlaneV8Settings();
    const underscores = values['headers-with-underscores']!;
    if (!isUnderscoreAction(underscores)) {
      throw new ConfigError(
        `--headers-with-underscores must be ${UNDERSCORE_ACTIONS.slice(0, -1).join(', ')} or ${UNDERSCORE_ACTIONS.at(-1)}; found ${JSON.stringify(underscores)}`,
      );
    }
    let labels: Record<string, string>;
    try {
      labels = parseLabels(values.labels!);
    } catch (error) {
      throw new ConfigError(`--labels: ${(error as Error).message}`);
    }
    // Here, not at the top: other commands share this binary and must not load the data plane.
    const { startSidecar } = await import('../../sidecar/sidecar.ts');
    const running = await startSidecar({
      controlPlane: values['control-plane']!,
      caFile: values['ca-file']!,
      bootstrapTokenFile: values['bootstrap-token-file']!,
      appPort: portFlag(values, 'app-port'),
      appHost: values['app-host']!,
      workload: values.workload!,
      namespace: values.namespace!,
      serviceAccount: values['service-account']!,
      trustDomain: values['trust-domain']!,
      labels,
      ...(values.advertise ? { advertise: values.advertise } : {}),
      inboundHost: values['inbound-host']!,
      inboundPort: portFlag(values, 'inbound-port'),
      outboundPort: portFlag(values, 'outbound-port'),
      adminPort: portFlag(values, 'admin-port'),
      headersWithUnderscores: underscores,
      inboundLimits: { maxConnections: countFlag(values, 'max-inbound-connections') },
      redisTimeoutMs: durationFlag(values, 'redis-timeout'),
      usageWindowSeconds: usageWindow(values),
      ...(values.pod ? { pod: values.pod } : {}),
      ...(values['access-log'] !== 'off' ? { accessLog: values['access-log']! } : {}),
    });
    return untilSignalled(() => running.close());
  },
};

/** --usage-window in whole seconds, or 0 for --usage-reports off. */
function usageWindow(values: Readonly<Record<string, string | undefined>>): number {
  const reports = values['usage-reports'];
  if (reports !== 'on' && reports !== 'off') {
    throw new ConfigError(`--usage-reports must be on or off; found ${JSON.stringify(reports)}`);
  }
  if (reports === 'off') return 0;
  return Math.max(1, Math.round(durationFlag(values, 'usage-window') / 1000));
}
