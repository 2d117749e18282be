/**
 * What the image holds (Dockerfile), short of building it (no container
 * engine runs here): a production install (`npm ci --omit=dev`, which the
 * postinstall step must survive without dev dependencies), the bundle, and
 * nothing else; the binary then runs from it, as the image's entrypoint does.
 */
import { execFile } from 'node:child_process';
import { copyFile, mkdir, readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { promisify } from 'node:util';
import t from 'tap';
import { bundle, ROOT } from '../../build/bundle.ts';
import { tempDir } from '../helpers.ts';

const run = promisify(execFile);

t.test(
  'npm ci --omit=dev works and the bundle runs on production dependencies alone',
  async (t) => {
    const dir = await tempDir(t);
    for (const file of ['package.json', 'package-lock.json', 'build/postinstall.mjs']) {
      await mkdir(join(dir, file, '..'), { recursive: true });
      await copyFile(join(ROOT, file), join(dir, file));
    }
    const install = await run(
      'npm',
      ['ci', '--omit=dev', '--prefer-offline', '--no-audit', '--no-fund'],
      {
        cwd: dir,
        env: { ...process.env, NODE_OPTIONS: '' },
        maxBuffer: 16 * 1024 * 1024,
      },
    );
    t.match(install.stdout, /no dev dependencies \(npm ci --omit=dev\): nothing to build/);
    for (const dev of ['tap', 'esbuild', 'typescript', 'kubernetes-models'])
      await t.rejects(
        readFile(join(dir, 'node_modules', dev, 'package.json')),
        `${dev} is not installed`,
      );

    await bundle(join(dir, 'dist'));
    const binary = join(dir, 'dist', 'postern.js');
    const help = await run(process.execPath, [binary, '--help'], { cwd: dir });
    t.match(help.stdout, /Commands:[\s\S]*gateway[\s\S]*inject[\s\S]*redirect/);
    // A command that loads the lazily imported parts (YAML, the injection) from the production install.
    const manifest = join(dir, 'pod.yaml');
    await writeFile(
      manifest,
      'apiVersion: v1\nkind: Pod\nmetadata: { name: p }\nspec: { containers: [{ name: app, image: app:1 }] }\n',
    );
    const injected = await run(process.execPath, [binary, 'inject', '-f', manifest], { cwd: dir });
    t.match(injected.stdout, /name: postern-proxy/);
    const rules = await run(process.execPath, [binary, 'redirect', '--dry-run', 'true'], {
      cwd: dir,
    });
    t.match(rules.stdout, /REDIRECT --to-ports 15001/);
  },
);
