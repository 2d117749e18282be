import { readFileSync, statSync } from 'node:fs';
import { resolve } from 'node:path';

/**
 * The checkout (or installed package) root. This module sits one folder
 * below it both as source (cli/) and bundled (dist/, where esbuild puts
 * every chunk), so the same expression holds for both.
 */
export const CHECKOUT = resolve(import.meta.dirname, '..');

/**
 * Which `postern` binary child processes run (`postern up`, the bench, the
 * tests): the JavaScript bundle that `npm install` builds (dist/postern.js,
 * see build/bundle.ts) while it is newer than every source file it was built
 * from, otherwise the TypeScript source. So an installed checkout runs what
 * it ships, and a source edit takes effect at once, before any rebuild.
 */
export function posternBin(root: string = CHECKOUT): string {
  const source = resolve(root, 'bin/postern.ts');
  const bundle = resolve(root, 'dist/postern.js');
  try {
    const builtAt = statSync(bundle).mtimeMs;
    const inputs = JSON.parse(readFileSync(resolve(root, 'dist/inputs.json'), 'utf8')) as string[];
    // A source file gone or changed since the build: the bundle is stale.
    const fresh = inputs.every((input) => statSync(resolve(root, input)).mtimeMs <= builtAt);
    return fresh ? bundle : source;
  } catch {
    return source;
  }
}
