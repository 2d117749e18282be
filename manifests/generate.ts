/**
 * Regenerates the generated manifests (`npm run generate`). A test fails when
 * the committed files differ from what this would write.
 */
import { writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { stringify } from 'yaml';
import { routePolicyCrd } from '../control-plane/crd.ts';

export const GENERATED = {
  [join(import.meta.dirname, 'crd', 'routepolicies.postern.dev.yaml')]: () =>
    `# Generated from common/policy/schema.ts by \`npm run generate\`; do not edit.\n${stringify(routePolicyCrd(), { lineWidth: 0 })}`,
};

if (import.meta.main) {
  for (const [path, render] of Object.entries(GENERATED)) {
    await writeFile(path, render());
    console.log(`wrote ${path}`);
  }
}
