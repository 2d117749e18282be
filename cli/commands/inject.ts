import { readFile, writeFile } from 'node:fs/promises';
import { ConfigError } from '../../common/errors.ts';
import { DEFAULT_INJECTION } from '../../common/injection-settings.ts';
import type { Command } from './command.ts';

export const inject: Command = {
  name: 'inject',
  summary:
    'Adds the Postern sidecar to the pods of a manifest offline (Pods, Deployments, StatefulSets, DaemonSets, ReplicaSets, Jobs, CronJobs), as the admission webhook would; other documents pass unchanged.',
  flags: [
    { name: 'file', short: 'f', help: 'multi-document YAML to read (- for stdin)', required: true },
    { name: 'output', short: 'o', help: 'where to write the result (default stdout)' },
    { name: 'image', help: "the sidecar's image", default: DEFAULT_INJECTION.image },
    {
      name: 'control-plane-url',
      help: "the control plane's URL as pods reach it",
      default: DEFAULT_INJECTION.controlPlaneUrl,
    },
    { name: 'trust-domain', help: 'SPIFFE trust domain', default: DEFAULT_INJECTION.trustDomain },
    {
      name: 'ca-config-map',
      help: "the ConfigMap in each namespace that holds the mesh's trust bundle (ca.crt)",
      default: DEFAULT_INJECTION.caConfigMap,
    },
  ],
  async run(values) {
    const { injectManifest } = await import('../../control-plane/webhooks/inject-manifest.ts');
    const file = values.file!;
    let text: string;
    try {
      text = file === '-' ? await readStdin() : await readFile(file, 'utf8');
    } catch (error) {
      throw new ConfigError(`-f ${file}: ${(error as Error).message}`);
    }
    const result = injectManifest(text, file, {
      image: values.image!,
      controlPlaneUrl: values['control-plane-url']!,
      trustDomain: values['trust-domain']!,
      caConfigMap: values['ca-config-map']!,
    });
    for (const line of result.notes) process.stderr.write(`${line}\n`);
    if (values.output) await writeFile(values.output, result.yaml);
    else process.stdout.write(result.yaml);
    return 0;
  },
};

async function readStdin(): Promise<string> {
  let text = '';
  for await (const chunk of process.stdin) text += chunk;
  return text;
}
