import { mkdir } from 'node:fs/promises';
import { join } from 'node:path';
import { ConfigError } from '../../common/errors.ts';
import { writeFileAtomic } from '../../common/private-file.ts';
import { DEFAULT_TRUST_DOMAIN, parseSpiffeId } from '../../common/spiffe.ts';
import type { RotationStatus } from '../../common/wire.ts';
import { asOperator, OPERATOR_FLAGS } from '../operator-api.ts';
import { type Command, durationFlag } from './command.ts';

// The CA and its certificate library load when a certs command runs, not at
// start: every role shares this binary, and the sidecar must not carry them (issue 7).
const authority = () => import('../../certs/authority.ts');

export const certsInit: Command = {
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
    const { CA_FILES, CertificateAuthority } = await authority();
    const ca = await CertificateAuthority.create(values['trust-domain']!);
    await ca.writeTo(values.out!);
    process.stdout.write(
      `wrote ${join(values.out!, CA_FILES.cert)}, ${CA_FILES.key} (0600) and ${CA_FILES.bundle}\n`,
    );
    return 0;
  },
};

export const certsIssue: Command = {
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
    const { CertificateAuthority } = await authority();
    const { generateKeyPair, privateKeyToPem } = await import('../../certs/x509.ts');
    const ca = await CertificateAuthority.load(values.ca!);
    const keys = await generateKeyPair();
    const cert = await ca.issue(keys.publicKey, {
      uris: [values['spiffe-id']!],
      ttlMs: durationFlag(values, 'ttl'),
    });
    await mkdir(values.out!, { recursive: true });
    // A new private file renamed into place: an existing key.pem's mode, or a symlink there, does not survive.
    await writeFileAtomic(join(values.out!, 'key.pem'), privateKeyToPem(keys.privateKey));
    await writeFileAtomic(join(values.out!, 'cert.pem'), cert, 0o644);
    await writeFileAtomic(join(values.out!, 'bundle.pem'), ca.bundlePem, 0o644);
    process.stdout.write(
      `wrote ${join(values.out!, 'cert.pem')}, key.pem (0600) and bundle.pem for ${values['spiffe-id']}\n`,
    );
    return 0;
  },
};

const ROTATE_ACTIONS = ['start', 'status', 'activate'] as const;

export const certsRotate: Command = {
  name: 'certs rotate',
  summary:
    'Rotates the mesh root CA of a running control plane: a new root joins the trust bundle, signs once every connected sidecar trusts it, and leaves the old root in the bundle until what it signed has expired. `certs rotate status` shows where a rotation stands; `certs rotate activate` makes the new root sign without waiting.',
  positional: '[start|status|activate]',
  flags: [
    ...OPERATOR_FLAGS,
    {
      name: 'propagation',
      help: "start: the least time the new root is announced before it signs, e.g. 10m (default: the control plane's, 5m)",
    },
  ],
  async run(values, positional) {
    const action = positional[0] ?? 'start';
    if (positional.length > 1 || !(ROTATE_ACTIONS as readonly string[]).includes(action)) {
      throw new ConfigError(
        `postern certs rotate: expected one of ${ROTATE_ACTIONS.join(', ')}; found ${JSON.stringify(positional.join(' '))}`,
      );
    }
    if (action === 'status') {
      const status = await asOperator<RotationStatus>(values, 'GET', '/v1/trust-bundle/rotation');
      process.stdout.write(`${JSON.stringify(status, null, 2)}\n`);
      return 0;
    }
    if (action === 'activate') {
      const status = await asOperator<RotationStatus>(
        values,
        'POST',
        '/v1/trust-bundle/rotation/activate',
        {},
      );
      process.stdout.write(
        `the new root signs: ${status.roots[0]?.subject}; the old root leaves the trust bundle at ${status.retireAt}\n`,
      );
      return 0;
    }
    // Checked here, so that a typo is reported against the flag; the control plane reads the same notation.
    if (values.propagation !== undefined) durationFlag(values, 'propagation');
    const status = await asOperator<RotationStatus>(
      values,
      'POST',
      '/v1/trust-bundle/rotation',
      values.propagation === undefined ? {} : { propagation: values.propagation },
    );
    process.stdout.write(
      status.phase === 'prepared'
        ? `rotation started: ${status.roots[1]?.subject} joins the trust bundle; it signs once every connected sidecar trusts it, from ${status.activatesNoSoonerThan} at the earliest (follow it with \`postern certs rotate status\`)\n`
        : `rotation started; the new root signs already (no sidecar left to wait for): ${status.roots[0]?.subject}\n`,
    );
    return 0;
  },
};
