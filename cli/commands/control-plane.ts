import type { KubeConfig } from '@kubernetes/client-node';
import { CONTROL_PLANE_LIMITS } from '../../common/connection-limits.ts';
import { ConfigError } from '../../common/errors.ts';
import { DEFAULT_INJECTION, type InjectionSettings } from '../../common/injection-settings.ts';
import { isPrincipalPattern, PRINCIPAL_PATTERN_HELP } from '../../common/policy/principals.ts';
import { DEFAULT_TRUST_DOMAIN } from '../../common/spiffe.ts';
import { isGlobalRateLimitConfig } from '../../common/wire.ts';
import { countFlag, portFlag, readAll } from '../flags.ts';
import { type Command, durationFlag, untilSignalled } from './command.ts';

export const controlPlane: Command = {
  name: 'control-plane',
  summary:
    'Runs the control plane: CA, CSR signing, policy snapshots from RoutePolicy YAML files or resources, workload registry.',
  flags: [
    {
      name: 'policies',
      help: 'folder of RoutePolicy YAML files (watched for changes); required with --policy-source files',
    },
    { name: 'state', help: 'state folder: CA, bootstrap tokens, version epoch', required: true },
    { name: 'api-port', help: 'HTTPS API port', default: '15010' },
    {
      name: 'webhook-port',
      help: 'admission webhooks /inject and /validate (HTTPS); default 15017 with --policy-source kubernetes, not served with files unless given',
    },
    {
      name: 'sidecar-image',
      help: 'the image injected pods run the sidecar from',
      default: DEFAULT_INJECTION.image,
    },
    {
      name: 'pod-control-plane-url',
      help: "this control plane's URL as injected sidecars reach it (its Service)",
      default: DEFAULT_INJECTION.controlPlaneUrl,
    },
    { name: 'host', help: 'address to bind', default: '0.0.0.0' },
    {
      name: 'trust-domain',
      help: 'SPIFFE trust domain, used when the CA is created',
      default: DEFAULT_TRUST_DOMAIN,
    },
    {
      name: 'mesh-default',
      help: 'for workloads no RoutePolicy selects: deny | allow-authenticated',
      default: 'deny',
    },
    { name: 'svid-ttl', help: 'lifetime of workload certificates', default: '24h' },
    {
      name: 'policy-source',
      help: 'files (the --policies folder) | kubernetes (RoutePolicy resources through the API)',
      default: 'files',
    },
    {
      name: 'kubeconfig',
      help: 'with --policy-source kubernetes: kubeconfig file (default: the in-cluster service account)',
    },
    {
      name: 'operators',
      help: 'identities that may read operator views (GET /v1/acks), comma-separated principal patterns; default spiffe://<trust-domain>/ns/postern-system/sa/operator',
    },
    {
      name: 'max-watches-per-identity',
      help: 'snapshot watches one workload identity may hold open (one per replica)',
      default: '100',
    },
    {
      name: 'redis',
      help: 'redis:// or rediss:// URL where sidecars count global rate limits (also POSTERN_REDIS_URL); without it each replica enforces its share',
    },
    {
      name: 'detection-learning',
      help: 'how long the exfiltration detectors watch a caller or workload before it may alert (0: from the first window, for demos and tests)',
      default: '24h',
    },
    {
      name: 'max-connections',
      help: 'open connections the API accepts; more are closed on accept, with a log line',
      default: String(CONTROL_PLANE_LIMITS.maxConnections),
    },
  ],
  async run(values) {
    // Every flag is read before anything starts, and every problem named at once.
    const read = readAll({
      meshDefault: () => meshDefaultFlag(values['mesh-default']),
      source: () => policySourceFlag(values['policy-source'], values.policies),
      apiPort: () => portFlag(values, 'api-port'),
      svidTtlMs: () => durationFlag(values, 'svid-ttl'),
      operators: () => (values.operators ? operatorsFlag(values.operators) : undefined),
      maxWatches: () => countFlag(values, 'max-watches-per-identity'),
      maxConnections: () => countFlag(values, 'max-connections'),
      redis: () => redisFlag(values.redis ?? process.env.POSTERN_REDIS_URL),
      detectionLearningMs: () =>
        values['detection-learning'] === '0' ? 0 : durationFlag(values, 'detection-learning'),
      webhooks: () =>
        webhookFlags(values, values['policy-source'] === 'kubernetes' ? 'kubernetes' : 'files'),
    });
    const { meshDefault, source } = read;
    // Loaded here, not at the top: every role shares this binary, and the
    // sidecar must not carry the control plane and its CA (issue 7).
    const { startControlPlane } = await import('../../control-plane/control-plane.ts');
    const cp = await startControlPlane({
      ...(source === 'kubernetes'
        ? { kubernetes: await kubeConfig(values.kubeconfig) }
        : { policiesDir: values.policies! }),
      stateDir: values.state!,
      apiPort: read.apiPort,
      host: values.host!,
      trustDomain: values['trust-domain']!,
      meshDefault,
      svidTtlMs: read.svidTtlMs,
      ...(read.operators ? { operators: read.operators } : {}),
      maxWatchesPerIdentity: read.maxWatches,
      limits: { maxConnections: read.maxConnections },
      ...read.redis,
      detectionLearningMs: read.detectionLearningMs,
      ...read.webhooks,
    });
    return untilSignalled(() => cp.close());
  },
};

/** The webhook port and what injected pods get: 15017 in a cluster unless told, off with files unless told. */
function webhookFlags(
  values: Readonly<Record<string, string | undefined>>,
  source: 'files' | 'kubernetes',
): { webhookPort?: number; injection?: InjectionSettings } {
  const given = values['webhook-port'];
  if (given === undefined && source === 'files') return {};
  return {
    webhookPort: given === undefined ? 15017 : portFlag(values, 'webhook-port'),
    injection: {
      ...DEFAULT_INJECTION,
      image: values['sidecar-image']!,
      controlPlaneUrl: values['pod-control-plane-url']!,
      trustDomain: values['trust-domain']!,
    },
  };
}

function redisFlag(url: string | undefined): { redisUrl?: string } {
  if (url === undefined || url === '') return {};
  if (!isGlobalRateLimitConfig({ replicas: 1, redis: url })) {
    throw new ConfigError(
      `--redis: expected a redis:// or rediss:// URL; found ${JSON.stringify(url)}`,
    );
  }
  return { redisUrl: url };
}

function operatorsFlag(text: string): string[] {
  const patterns = text
    .split(',')
    .map((p) => p.trim())
    .filter(Boolean);
  const bad = patterns.find((p) => !isPrincipalPattern(p));
  if (bad || !patterns.length) {
    throw new ConfigError(
      `--operators: expected comma-separated ${PRINCIPAL_PATTERN_HELP}; found ${JSON.stringify(bad ?? text)}`,
    );
  }
  return patterns;
}

/** The API server to read RoutePolicies from: a kubeconfig file, or the pod's service account. */
async function kubeConfig(file: string | undefined): Promise<KubeConfig> {
  // Loaded here, not at the top: only cluster mode needs the Kubernetes client.
  const { KubeConfig } = await import('@kubernetes/client-node');
  const config = new KubeConfig();
  if (file) config.loadFromFile(file);
  else config.loadFromCluster();
  return config;
}

function meshDefaultFlag(value: string | undefined): 'deny' | 'allow-authenticated' {
  if (value === 'deny' || value === 'allow-authenticated') return value;
  throw new ConfigError(
    `--mesh-default must be deny or allow-authenticated; found ${JSON.stringify(value)}`,
  );
}

function policySourceFlag(
  value: string | undefined,
  policies: string | undefined,
): 'files' | 'kubernetes' {
  if (value !== 'files' && value !== 'kubernetes')
    throw new ConfigError(
      `--policy-source must be files or kubernetes; found ${JSON.stringify(value)}`,
    );
  if (value === 'files' && !policies)
    throw new ConfigError(
      'postern control-plane: --policies DIR is required with --policy-source files',
    );
  return value;
}
