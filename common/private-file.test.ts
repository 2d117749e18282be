import { lstat, mkdir, readdir, readFile, stat, symlink, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import t from 'tap';
import { tempDir } from '../test/helpers.ts';
import { writeFileAtomic } from './private-file.ts';

const modeOf = async (path: string) => (await stat(path)).mode & 0o777;

t.test('a new file gets the content and mode 0600', async (t) => {
  const dir = await tempDir(t);
  await writeFileAtomic(join(dir, 'key.pem'), 'secret\n');
  t.equal(await readFile(join(dir, 'key.pem'), 'utf8'), 'secret\n');
  t.equal(await modeOf(join(dir, 'key.pem')), 0o600);
  t.same(await readdir(dir), ['key.pem'], 'no temporary file is left behind');
});

t.test(
  'an existing world-readable file comes out 0600 even with a umask that removes nothing',
  async (t) => {
    const previous = process.umask(0);
    t.teardown(() => void process.umask(previous));
    const dir = await tempDir(t);
    const path = join(dir, 'token');
    await writeFile(path, 'old\n', { mode: 0o666 });
    t.equal(await modeOf(path), 0o666, 'the file really was world-writable before');
    await writeFileAtomic(path, 'new\n');
    t.equal(await readFile(path, 'utf8'), 'new\n');
    t.equal(await modeOf(path), 0o600);
  },
);

t.test('a restrictive umask does not change the mode asked for', async (t) => {
  const previous = process.umask(0o077);
  t.teardown(() => void process.umask(previous));
  const dir = await tempDir(t);
  await writeFileAtomic(join(dir, 'epoch'), '1\n', 0o644);
  t.equal(await modeOf(join(dir, 'epoch')), 0o644);
});

t.test(
  'a symlink at the target is replaced by a regular file and its target is never written through',
  async (t) => {
    const dir = await tempDir(t);
    const elsewhere = join(dir, 'elsewhere.txt');
    await writeFile(elsewhere, 'not yours\n', { mode: 0o644 });
    const path = join(dir, 'key.pem');
    await symlink(elsewhere, path);
    await writeFileAtomic(path, 'secret\n');
    t.ok((await lstat(path)).isFile(), 'key.pem is a regular file now, not a symlink');
    t.equal(await readFile(path, 'utf8'), 'secret\n');
    t.equal(await modeOf(path), 0o600);
    t.equal(await readFile(elsewhere, 'utf8'), 'not yours\n', "the symlink's target is untouched");
    t.equal(await modeOf(elsewhere), 0o644, "the symlink's target keeps its mode");
  },
);

t.test(
  'a symlink planted at the old predictable temporary name (PATH.PID.tmp) is not followed',
  async (t) => {
    const dir = await tempDir(t);
    const elsewhere = join(dir, 'elsewhere.txt');
    await writeFile(elsewhere, 'not yours\n', { mode: 0o644 });
    const path = join(dir, 'tokens.json');
    await symlink(elsewhere, `${path}.${process.pid}.tmp`);
    await writeFileAtomic(path, '{}\n');
    t.equal(await readFile(path, 'utf8'), '{}\n');
    t.equal(await readFile(elsewhere, 'utf8'), 'not yours\n', "the symlink's target is untouched");
    t.equal(await modeOf(elsewhere), 0o644);
  },
);

t.test(
  'concurrent writes to one path each use their own temporary file, and the last rename wins whole',
  async (t) => {
    const dir = await tempDir(t);
    const path = join(dir, 'tokens.json');
    const contents = Array.from({ length: 20 }, (_, i) => `${i}\n`.repeat(1000));
    await Promise.all(contents.map((content) => writeFileAtomic(path, content)));
    t.ok(contents.includes(await readFile(path, 'utf8')), 'the file is one write, not a mix');
    t.same(await readdir(dir), ['tokens.json'], 'no temporary file is left behind');
  },
);

t.test(
  'a write that cannot be renamed into place fails and leaves no temporary file',
  async (t) => {
    const dir = await tempDir(t);
    await mkdir(join(dir, 'key.pem'));
    await t.rejects(writeFileAtomic(join(dir, 'key.pem'), 'secret\n'), { code: 'EISDIR' });
    t.same(await readdir(dir), ['key.pem']);
  },
);
