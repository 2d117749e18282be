import { ConfigError } from '../../common/errors.ts';
import { writeFileAtomic } from '../../common/private-file.ts';
import { DEFAULT_TRUST_DOMAIN, parseSpiffeId } from '../../common/spiffe.ts';
import { parseLabels } from '../../common/wire.ts';
import { type Command, durationFlag } from './command.ts';

// The control plane's token store, loaded when a token command runs: the sidecar shares this binary.
async function tokenStore(stateDir: string, trustDomain: string) {
  const { statePaths } = await import('../../control-plane/state.ts');
  const { TokenStore } = await import('../../control-plane/tokens.ts');
  return new TokenStore(statePaths(stateDir).tokens, trustDomain);
}

export const tokenCreate: Command = {
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
    {
      name: 'labels',
      help: "the workload's labels, k=v,k2=v2: what RoutePolicy selectors match (default app=<workload>)",
    },
  ],
  async run(values) {
    const store = await tokenStore(values.state!, values['trust-domain']!);
    const ttlMs = values.ttl ? durationFlag(values, 'ttl') : undefined;
    const labels = values.labels ? labelsFlag(values.labels) : undefined;
    const token = await store.create(
      values.workload!,
      values.namespace!,
      values['service-account']!,
      ttlMs,
      labels,
    );
    // A new private file renamed into place: an existing file's mode, or a
    // symlink there, does not survive. If it cannot be written, the token
    // nobody was shown is deleted again.
    try {
      await writeFileAtomic(values.out!, `${token}\n`);
    } catch (error) {
      await store.forget(token);
      throw error;
    }
    process.stdout.write(
      `wrote a bootstrap token for ${values.workload} to ${values.out} (0600)\n`,
    );
    return 0;
  },
};

function labelsFlag(text: string): Record<string, string> {
  try {
    return parseLabels(text);
  } catch (error) {
    throw new ConfigError(`--labels: ${(error as Error).message}`);
  }
}

export const tokenRevoke: Command = {
  name: 'token revoke',
  summary:
    'Revokes an identity: deletes its bootstrap tokens (its sidecars can no longer bootstrap nor renew) and records the revocation, so the control plane ends its watches and every sidecar refuses its certificates issued until now.',
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
    const store = await tokenStore(values.state!, id.trustDomain);
    const removed = await store.revoke(values['spiffe-id']!);
    process.stdout.write(
      `revoked ${values['spiffe-id']}: deleted ${removed} bootstrap token(s); its certificates issued until now are refused\n`,
    );
    if (removed) return 0;
    // Recorded all the same (certificates may exist without tokens), but a
    // typo should not pass for success.
    process.stderr.write(`no token was bound to ${values['spiffe-id']}; check the identity\n`);
    return 1;
  },
};
