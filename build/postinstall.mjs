// What `npm install` / `npm ci` builds after installing: tap's runner and
// the bundle (build/bundle.ts). Both need dev dependencies; a production
// install (`npm ci --omit=dev`, the image) has none and ships a bundle
// built beforehand, so there is nothing to build and this says so.
// JavaScript, not TypeScript: without dev dependencies the Node that runs
// it may be one that cannot strip types.
import { execFileSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import { resolve } from 'node:path';

const root = resolve(import.meta.dirname, '..');
const installed = (name) => existsSync(resolve(root, 'node_modules', name, 'package.json'));
if (!installed('tap') || !installed('esbuild')) {
  console.log('postinstall: no dev dependencies (npm ci --omit=dev): nothing to build');
} else {
  // npm scripts find node_modules/.bin first: tap, and the Node 24 the project runs on.
  execFileSync('tap', ['build'], { stdio: 'inherit', cwd: root });
  execFileSync('node', ['build/bundle.ts'], { stdio: 'inherit', cwd: root });
}
