import { mkdir, readFile, rename, symlink, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import t from 'tap';
import { eventually, tempDir, testLogger } from '../test/helpers.ts';
import { FileReloader } from './file-reloader.ts';

t.test(
  'regression: a file in a mounted Secret was never reloaded (the kubelet swaps ..data, not the file)',
  async (t) => {
    const dir = await tempDir(t);
    // The kubelet's layout: tls.crt -> ..data/tls.crt, ..data -> ..<timestamp>.
    await mkdir(join(dir, '..2026_11_26_08_00_00.1'));
    await writeFile(join(dir, '..2026_11_26_08_00_00.1', 'tls.crt'), 'one');
    await symlink('..2026_11_26_08_00_00.1', join(dir, '..data'));
    await symlink('..data/tls.crt', join(dir, 'tls.crt'));
    const seen: string[] = [];
    const file = join(dir, 'tls.crt');
    const reloader = new FileReloader({
      paths: [file],
      load: () => readFile(file, 'utf8'),
      apply: (value) => seen.push(value),
      logger: testLogger('reloader'),
      what: 'certificate',
    });
    t.teardown(() => reloader.close());
    t.equal(await reloader.start(), 'one');
    // The rotation: a new timestamped folder, then ..data swapped to it by rename.
    await mkdir(join(dir, '..2026_11_26_09_00_00.2'));
    await writeFile(join(dir, '..2026_11_26_09_00_00.2', 'tls.crt'), 'two');
    await symlink('..2026_11_26_09_00_00.2', join(dir, '..data_tmp'));
    await rename(join(dir, '..data_tmp'), join(dir, '..data'));
    await eventually(() => seen.includes('two'));
    t.pass('the new content applied');
  },
);
