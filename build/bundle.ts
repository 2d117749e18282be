/**
 * Builds the `postern` binary as JavaScript ahead of time: dist/postern.js
 * and the chunks only some roles load (the control plane, the Kubernetes
 * client path, the CA). `npm install` runs it (postinstall), and so do the
 * npm scripts that start processes, so the bundle is never older than the
 * source they run.
 *
 *   node build/bundle.ts
 *
 * Why: a process started from the TypeScript source strips types and
 * resolves every module at start and keeps every module's full source text
 * in its heap; a sidecar from the bundle starts faster and holds less
 * (figures in load-tests/reports/bench-experiments.md). Identifiers are kept
 * (whitespace and syntax minified only) so stack traces still read.
 */
import { writeFile } from 'node:fs/promises';
import { resolve } from 'node:path';
import { type BuildOptions, build } from 'esbuild';

export const ROOT = resolve(import.meta.dirname, '..');
export const DIST = resolve(ROOT, 'dist');

/**
 * How every bundle of ours is built: ESM for Node 24, whitespace and syntax
 * minified with identifiers kept (stack traces still read), a linked source
 * map, and a `require` for the CommonJS dependencies (http-proxy) that call
 * it for Node's modules. The bench builds its Node floor with the same, so
 * the two are compared like for like.
 */
export const BUNDLE_OPTIONS = {
  absWorkingDir: ROOT,
  bundle: true,
  format: 'esm',
  platform: 'node',
  target: 'node24',
  minifyWhitespace: true,
  minifySyntax: true,
  sourcemap: 'linked',
  banner: {
    js: "import { createRequire as __createRequire } from 'node:module'; const require = __createRequire(import.meta.url);",
  },
  logLevel: 'warning',
} as const satisfies BuildOptions;

/** Builds the bundle into `outdir` (dist/ unless told: the image test builds one of its own). */
export async function bundle(outdir: string = DIST): Promise<void> {
  const result = await build({
    ...BUNDLE_OPTIONS,
    entryPoints: { postern: 'bin/postern.ts' },
    outdir,
    // Each role's own code in its own chunk, loaded by the command's import().
    splitting: true,
    // Loaded only where switched on, and large, so left to node_modules: the
    // Kubernetes client (control plane in cluster mode), the OpenTelemetry SDK
    // and API (OTEL_* exporters; one copy, so the API the sidecar calls is the
    // one the SDK registers with), pino (an access log).
    external: ['@kubernetes/client-node', '@opentelemetry/*', 'pino'],
    metafile: true,
  });
  // Which sources went in: cli/processes.ts runs the bundle only while it is newer than all of them.
  await writeFile(
    resolve(outdir, 'inputs.json'),
    JSON.stringify(
      Object.keys(result.metafile.inputs).filter((input) => !input.includes('node_modules')),
    ),
  );
}

if (import.meta.main) await bundle();
