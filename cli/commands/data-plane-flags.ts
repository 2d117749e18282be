/**
 * The flags every data-plane role takes (`postern sidecar`, `postern
 * gateway`): who it is, where its control plane is, and what it records.
 */
import { ConfigError } from '../../common/errors.ts';
import { DEFAULT_TRUST_DOMAIN } from '../../common/spiffe.ts';
import { parseLabels } from '../../common/wire.ts';
import type { DataPlaneOptions } from '../../sidecar/data-plane.ts';
import { parseAppProbes } from '../../sidecar/listeners/status.ts';
import type { FlagSpec } from '../flags.ts';
import { portFlag, readAll } from '../flags.ts';
import { durationFlag } from './command.ts';

type Values = Readonly<Record<string, string | undefined>>;

export const identityFlags: readonly FlagSpec[] = [
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
  { name: 'workload', help: 'workload (service) name', required: true },
  { name: 'namespace', help: 'namespace', required: true },
  { name: 'service-account', help: 'service account', required: true },
  { name: 'trust-domain', help: 'SPIFFE trust domain', default: DEFAULT_TRUST_DOMAIN },
  {
    name: 'labels',
    help: 'workload labels, k=v,k2=v2; they come from the bootstrap token (token create --labels), and when given here must equal those',
    default: '',
  },
];

export const recordingFlags: readonly FlagSpec[] = [
  { name: 'admin-port', help: 'admin port on 127.0.0.1', default: '15000' },
  {
    name: 'status-port',
    help: "status port on the pod's address for the kubelet: /healthz/ready and the app's rewritten probes (injected pods: 15021; default none)",
  },
  {
    name: 'app-probes',
    help: 'the app\'s original HTTP probes as JSON, {"/app-health/<container>/<kind>": {"path", "port", "scheme"}} (the injection writes it)',
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
    name: 'drain-timeout',
    help: 'on SIGTERM: readiness turns false, nothing new is accepted, and open requests have this long to finish before their connections are cut',
    default: '20s',
  },
  {
    name: 'redis-timeout',
    help: "how long a global rate-limit check waits for Redis before this replica's share decides",
    default: '50ms',
  },
];

/** The DataPlaneOptions the flags above say. */
export function dataPlaneOptions(values: Values): DataPlaneOptions {
  const read = readAll({
    labels: () => labelsFlag(values.labels!),
    adminPort: () => portFlag(values, 'admin-port'),
    redisTimeoutMs: () => durationFlag(values, 'redis-timeout'),
    usageWindowSeconds: () => usageWindow(values),
    statusPort: () => (values['status-port'] ? portFlag(values, 'status-port') : undefined),
    appProbes: () => (values['app-probes'] ? appProbesFlag(values['app-probes']) : undefined),
  });
  return {
    controlPlane: values['control-plane']!,
    caFile: values['ca-file']!,
    bootstrapTokenFile: values['bootstrap-token-file']!,
    workload: values.workload!,
    namespace: values.namespace!,
    serviceAccount: values['service-account']!,
    trustDomain: values['trust-domain']!,
    labels: read.labels,
    adminPort: read.adminPort,
    redisTimeoutMs: read.redisTimeoutMs,
    usageWindowSeconds: read.usageWindowSeconds,
    ...(values.pod ? { pod: values.pod } : {}),
    ...(read.statusPort === undefined ? {} : { statusPort: read.statusPort }),
    ...(read.appProbes === undefined ? {} : { appProbes: read.appProbes }),
    ...(values['access-log'] !== 'off' ? { accessLog: values['access-log']! } : {}),
  };
}

/** --usage-window in whole seconds, or 0 for --usage-reports off. */
function usageWindow(values: Values): number {
  const reports = values['usage-reports'];
  if (reports !== 'on' && reports !== 'off') {
    throw new ConfigError(`--usage-reports must be on or off; found ${JSON.stringify(reports)}`);
  }
  if (reports === 'off') return 0;
  return Math.max(1, Math.round(durationFlag(values, 'usage-window') / 1000));
}

function appProbesFlag(text: string) {
  try {
    return parseAppProbes(text);
  } catch (error) {
    throw new ConfigError(`--app-probes: ${(error as Error).message}`);
  }
}

function labelsFlag(text: string): Record<string, string> {
  try {
    return parseLabels(text);
  } catch (error) {
    throw new ConfigError(`--labels: ${(error as Error).message}`);
  }
}
