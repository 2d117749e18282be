import { mkdir, writeFile } from 'node:fs/promises';
import { join, resolve } from 'node:path';
import type { KubeConfig } from '@kubernetes/client-node';
import { CA_FILES, CertificateAuthority } from '../certs/authority.ts';
import { generateKeyPair, privateKeyToPem } from '../certs/x509.ts';
import { ConfigError, NotImplementedError } from '../common/errors.ts';
import { loadPolicies } from '../common/policy/files.ts';
import { DEFAULT_TRUST_DOMAIN, parseSpiffeId } from '../common/spiffe.ts';
import { parseDuration } from '../common/units.ts';
import { parseLabels } from '../common/wire.ts';
import { startControlPlane } from '../control-plane/control-plane.ts';
import { statePaths } from '../control-plane/state.ts';
import { TokenStore } from '../control-plane/tokens.ts';
import { startSidecar } from '../sidecar/sidecar.ts';
import { type CommandSpec, portFlag } from './flags.ts';
import { runUp } from './up.ts';

export interface Command extends CommandSpec {
  /** Runs the command; resolves with the exit code (long-running commands resolve when stopped). */
  run(
    values: Readonly<Record<string, string | undefined>>,
    positional: readonly string[],
  ): Promise<number>;
}

/** Runs until SIGINT/SIGTERM, then calls `stop`. */
function untilSignalled(stop: () => Promise<void>): Promise<number> {
  return new Promise((resolveExit) => {
    const handler = () => {
      process.off('SIGINT', handler);
      process.off('SIGTERM', handler);
      stop().then(
        () => resolveExit(0),
        () => resolveExit(1),
      );
    };
    process.on('SIGINT', handler);
    process.on('SIGTERM', handler);
  });
}

const durationFlag = (
  values: Readonly<Record<string, string | undefined>>,
  name: string,
): number => {
  try {
    return parseDuration(values[name]!);
  } catch (error) {
    throw new ConfigError(`--${name}: ${(error as Error).message}`);
  }
};

const certsInit: Command = {
  name: 'certs init',
  summary:
    'Creates a development root CA (ECDSA P-256): DIR/ca.crt, DIR/ca.key (0600), DIR/bundle.pem.',
  flags: [
    { name: 'out', help: 'folder to write the CA to', required: true },
    {
      name: 'trust-domain',
      help: 'SPIFFE trust domain the CA speaks for',
      default: DEFAULT_TRUST_DOMAIN,
    },
  ],
  async run(values) {
    const ca = await CertificateAuthority.create(values['trust-domain']!);
    await ca.writeTo(values.out!);
    process.stdout.write(
      `wrote ${join(values.out!, CA_FILES.cert)}, ${CA_FILES.key} (0600) and ${CA_FILES.bundle}\n`,
    );
    return 0;
  },
};

const certsIssue: Command = {
  name: 'certs issue',
  summary:
    'Mints a short-lived workload certificate from a CA folder: DIR/cert.pem, DIR/key.pem (0600), DIR/bundle.pem, so that curl can call a sidecar as that identity.',
  flags: [
    {
      name: 'ca',
      help: 'CA folder (as written by certs init, or STATE/ca of a control plane)',
      required: true,
    },
    { name: 'spiffe-id', help: 'identity, spiffe://<td>/ns/<ns>/sa/<sa>', required: true },
    { name: 'out', help: 'folder to write cert.pem, key.pem, bundle.pem to', required: true },
    { name: 'ttl', help: 'validity', default: '24h' },
  ],
  async run(values) {
    parseSpiffeId(values['spiffe-id']!);
    const ca = await CertificateAuthority.load(values.ca!);
    const keys = await generateKeyPair();
    const cert = await ca.issue(keys.publicKey, {
      uris: [values['spiffe-id']!],
      ttlMs: durationFlag(values, 'ttl'),
    });
    await mkdir(values.out!, { recursive: true });
    await writeFile(join(values.out!, 'key.pem'), privateKeyToPem(keys.privateKey), {
      mode: 0o600,
    });
    await writeFile(join(values.out!, 'cert.pem'), cert);
    await writeFile(join(values.out!, 'bundle.pem'), ca.bundlePem);
    process.stdout.write(
      `wrote ${join(values.out!, 'cert.pem')}, key.pem (0600) and bundle.pem for ${values['spiffe-id']}\n`,
    );
    return 0;
  },
};

const controlPlane: Command = {
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
      help: 'admission webhook port (the webhook is not built yet)',
      default: '15017',
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
  ],
  async run(values) {
    const meshDefault = values['mesh-default'];
    if (meshDefault !== 'deny' && meshDefault !== 'allow-authenticated') {
      throw new ConfigError(
        `--mesh-default must be deny or allow-authenticated; found ${JSON.stringify(meshDefault)}`,
      );
    }
    const source = values['policy-source'];
    if (source !== 'files' && source !== 'kubernetes') {
      throw new ConfigError(
        `--policy-source must be files or kubernetes; found ${JSON.stringify(source)}`,
      );
    }
    if (source === 'files' && !values.policies) {
      throw new ConfigError(
        'postern control-plane: --policies DIR is required with --policy-source files',
      );
    }
    const cp = await startControlPlane({
      ...(source === 'kubernetes'
        ? { kubernetes: await kubeConfig(values.kubeconfig) }
        : { policiesDir: values.policies! }),
      stateDir: values.state!,
      apiPort: portFlag(values, 'api-port'),
      host: values.host!,
      trustDomain: values['trust-domain']!,
      meshDefault,
      svidTtlMs: durationFlag(values, 'svid-ttl'),
    });
    return untilSignalled(() => cp.close());
  },
};

/** The API server to read RoutePolicies from: a kubeconfig file, or the pod's service account. */
async function kubeConfig(file: string | undefined): Promise<KubeConfig> {
  // Loaded here, not at the top: only cluster mode needs the Kubernetes client.
  const { KubeConfig } = await import('@kubernetes/client-node');
  const config = new KubeConfig();
  if (file) config.loadFromFile(file);
  else config.loadFromCluster();
  return config;
}

const tokenCreate: Command = {
  name: 'token create',
  summary:
    'Mints a bootstrap token bound to one workload identity and writes it to FILE (0600); the control plane stores only its hash.',
  flags: [
    { name: 'state', help: 'the control plane state folder', required: true },
    { name: 'workload', help: 'workload (service) name', required: true },
    { name: 'namespace', help: 'namespace', required: true },
    { name: 'service-account', help: 'service account', required: true },
    { name: 'out', help: 'file to write the token to', required: true },
    { name: 'trust-domain', help: 'SPIFFE trust domain', default: DEFAULT_TRUST_DOMAIN },
    {
      name: 'ttl',
      help: 'how long the token can bootstrap a sidecar, e.g. 1h (default: until revoked)',
    },
  ],
  async run(values) {
    const store = new TokenStore(statePaths(values.state!).tokens, values['trust-domain']!);
    const ttlMs = values.ttl ? durationFlag(values, 'ttl') : undefined;
    const token = await store.create(
      values.workload!,
      values.namespace!,
      values['service-account']!,
      ttlMs,
    );
    await writeFile(values.out!, `${token}\n`, { mode: 0o600 });
    process.stdout.write(`wrote a bootstrap token for ${values.workload} to ${values.out}\n`);
    return 0;
  },
};

const tokenRevoke: Command = {
  name: 'token revoke',
  summary:
    'Deletes the bootstrap tokens bound to an identity: its sidecars can no longer bootstrap, nor renew their certificates.',
  flags: [
    { name: 'state', help: 'the control plane state folder', required: true },
    {
      name: 'spiffe-id',
      help: 'identity to revoke, spiffe://<td>/ns/<ns>/sa/<sa>',
      required: true,
    },
  ],
  async run(values) {
    const id = parseSpiffeId(values['spiffe-id']!);
    const store = new TokenStore(statePaths(values.state!).tokens, id.trustDomain);
    const removed = await store.revoke(values['spiffe-id']!);
    process.stdout.write(`revoked ${removed} token(s) bound to ${values['spiffe-id']}\n`);
    return removed ? 0 : 1;
  },
};

const sidecar: Command = {
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
      help: 'workload labels, k=v,k2=v2 (what RoutePolicy selectors match)',
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
  ],
  async run(values) {
    let labels: Record<string, string>;
    try {
      labels = parseLabels(values.labels!);
    } catch (error) {
      throw new ConfigError(`--labels: ${(error as Error).message}`);
    }
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
    });
    return untilSignalled(() => running.close());
  },
};

const policyValidate: Command = {
  name: 'policy validate',
  summary:
    'Checks RoutePolicy files; prints every error (file, resource, JSON path) and warning; exits 1 on any error.',
  flags: [],
  positional: 'FILE|DIR...',
  async run(_values, positional) {
    if (!positional.length)
      throw new ConfigError('postern policy validate: name at least one file or folder');
    const loaded = await loadPolicies(positional);
    for (const warning of loaded.warnings) process.stdout.write(`warning: ${warning}\n`);
    for (const error of loaded.errors) process.stdout.write(`error: ${error}\n`);
    process.stdout.write(
      `${loaded.policies.length} valid RoutePolicy resource(s), ${loaded.errors.length} error(s), ${loaded.warnings.length} warning(s)\n`,
    );
    return loaded.errors.length ? 1 : 0;
  },
};

const up: Command = {
  name: 'up',
  summary:
    'Starts a local mesh on loopback: control plane, demo services frontend and orders each with a sidecar, dev CA on first run. Ctrl-C stops all.',
  flags: [
    {
      name: 'policies',
      help: 'folder of RoutePolicy YAML',
      default: resolve(import.meta.dirname, '../demo/policies'),
    },
    { name: 'state', help: 'state folder (CA, tokens, client certificates)', default: '.postern' },
  ],
  run: (values) => runUp({ policiesDir: values.policies!, stateDir: values.state! }),
};

function notBuilt(name: string, summary: string, what: string): Command {
  return {
    name,
    summary: `${summary} (not implemented yet)`,
    flags: [],
    positional: '...',
    async run() {
      throw new NotImplementedError(what);
    },
  };
}

export const COMMANDS: readonly Command[] = [
  up,
  controlPlane,
  sidecar,
  tokenCreate,
  tokenRevoke,
  certsInit,
  certsIssue,
  policyValidate,
  notBuilt('inject', 'Offline sidecar injection into Pod/Deployment manifests', 'postern inject'),
  notBuilt(
    'usage replay',
    'Runs the exfiltration detectors over a usage log',
    'postern usage replay',
  ),
];
