/**
 * CI runs the harness only as a smoke (seconds): real processes, real mTLS,
 * a few hundred requests, reports written to a temporary folder. It proves
 * the harness works, never measures anything.
 */
import { execFile } from 'node:child_process';
import { readFile } from 'node:fs/promises';
import { join, resolve } from 'node:path';
import { promisify } from 'node:util';
import t from 'tap';
import { CHILD_NODE_ARGS } from '../cli/processes.ts';
import { tempDir } from '../test/helpers.ts';

t.test('npm run bench -- --smoke measures every target and writes the reports', async (t) => {
  const out = await tempDir(t);
  const { stdout } = await promisify(execFile)(
    process.execPath,
    [...CHILD_NODE_ARGS, resolve(import.meta.dirname, 'bench.ts'), '--smoke', '--out', out],
    { timeout: 90_000 },
  );
  t.match(stdout, /\| added latency p50 \| ≤ 0\.50 ms \|/);
  t.match(stdout, /\| what \| budget \| Postern \| result \| Node floor \|/);
  // The smoke starts the Node floor (the run fails unless its readiness check gets an mTLS
  // request through it to the app) and leaves measuring it to full runs.
  t.match(stdout, /\| added latency p50 \| .* \| not measured \|$/m);
  const report = JSON.parse(await readFile(join(out, 'bench.json'), 'utf8'));
  t.notOk(report.nodeFloor, 'the floor is not measured in a smoke run');
  t.ok(report.direct.requests > 0, 'the app was called directly');
  t.equal(report.postern.errors, 0, 'every request through Postern succeeded');
  t.ok(report.postern.requests > 0);
  t.ok(report.mesh.requests > 0, 'and through both sidecars of the mesh hop');
  t.equal(report.mesh.errors, 0);
  t.ok(report.postern.proxyCpuSeconds > 0, "the sidecar's CPU was read from /proc");
  t.ok(report.rss.atStartMb > 0);
  t.equal(report.budget.length, 8);
  t.same(
    report.jwt.map((j: { alg: string }) => j.alg),
    ['ES256', 'RS256'],
    'JWT verification timed for both algorithms',
  );
  const markdown = await readFile(join(out, 'bench.md'), 'utf8');
  t.match(markdown, /## Budget/);
  t.match(markdown, /## JWT verification \(pure function\)/);
  t.match(await readFile(join(out, 'bench.svg'), 'utf8'), /^<svg /);
});
