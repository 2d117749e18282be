import { mkdirSync, utimesSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import t, { type Test } from 'tap';
import { posternBin } from './postern-bin.ts';

function checkout(t: Test) {
  const root = t.testdir({
    bin: { 'postern.ts': '' },
    sidecar: { 'sidecar.ts': '' },
  });
  const build = (at: number) => {
    mkdirSync(join(root, 'dist'), { recursive: true });
    writeFileSync(join(root, 'dist/postern.js'), '');
    writeFileSync(
      join(root, 'dist/inputs.json'),
      JSON.stringify(['bin/postern.ts', 'sidecar/sidecar.ts']),
    );
    utimesSync(join(root, 'dist/postern.js'), at, at);
  };
  const touch = (file: string, at: number) => utimesSync(join(root, file), at, at);
  return { root, build, touch };
}

t.test('a checkout never built runs the TypeScript source', (t) => {
  const { root } = checkout(t);
  t.equal(posternBin(root), join(root, 'bin/postern.ts'));
  t.end();
});

t.test('a bundle newer than all its sources is what runs', (t) => {
  const { root, build, touch } = checkout(t);
  touch('bin/postern.ts', 1_000);
  touch('sidecar/sidecar.ts', 1_000);
  build(2_000);
  t.equal(posternBin(root), join(root, 'dist/postern.js'));
  t.end();
});

t.test('a source edited after the build makes the source run, not the stale bundle', (t) => {
  const { root, build, touch } = checkout(t);
  touch('bin/postern.ts', 1_000);
  build(2_000);
  touch('sidecar/sidecar.ts', 3_000);
  t.equal(posternBin(root), join(root, 'bin/postern.ts'));
  t.end();
});
