/**
 * Security-review finding 11: private keys and tokens the CLI writes are 0600
 * regular files even where a file (or a symlink) already was. Runs the real
 * binary, as test/cli.test.ts does.
 */

import { chmod, lstat, mkdir, readFile, stat, symlink, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import t, { type Test } from 'tap';
import { postern, tempDir } from './helpers.ts';

const modeOf = async (path: string) => (await stat(path)).mode & 0o777;

/** A file another user could read, standing where a command is about to write. */
async function worldReadable(path: string): Promise<void> {
  await writeFile(path, 'old\n');
  await chmod(path, 0o644);
}

/** A symlink at `path` to a world-readable file elsewhere; returns that file. */
async function symlinkElsewhere(dir: string, path: string): Promise<string> {
  const elsewhere = join(dir, 'elsewhere.txt');
  await writeFile(elsewhere, 'not yours\n');
  await chmod(elsewhere, 0o644);
  await symlink(elsewhere, path);
  return elsewhere;
}

/** `path` is now a regular 0600 file, and the file the symlink there pointed at is as it was. */
async function replacedNotFollowed(t: Test, path: string, elsewhere: string): Promise<void> {
  t.ok((await lstat(path)).isFile(), `${path} is a regular file, not a symlink`);
  t.equal(await modeOf(path), 0o600);
  t.equal(await readFile(elsewhere, 'utf8'), 'not yours\n', 'the target is unchanged');
  t.equal(await modeOf(elsewhere), 0o644, 'and its mode too (chmod did not reach through)');
}

/** A temporary folder with a CA in DIR/ca. */
async function caIn(t: Parameters<typeof tempDir>[0]): Promise<string> {
  const dir = await tempDir(t);
  const init = postern('certs', 'init', '--out', join(dir, 'ca'));
  if (init.status !== 0) throw new Error(`certs init failed: ${init.stderr}`);
  return dir;
}

const issue = (dir: string) =>
  postern(
    'certs',
    'issue',
    '--ca',
    join(dir, 'ca'),
    '--spiffe-id',
    'spiffe://cluster.local/ns/default/sa/me',
    '--out',
    join(dir, 'me'),
  );

const createToken = (dir: string, out: string) =>
  postern(
    'token',
    'create',
    '--state',
    join(dir, 'state'),
    '--workload',
    'orders',
    '--namespace',
    'shop',
    '--service-account',
    'orders',
    '--out',
    out,
  );

t.test('certs issue over an existing world-readable key.pem leaves it 0600', async (t) => {
  const dir = await caIn(t);
  await mkdir(join(dir, 'me'));
  await worldReadable(join(dir, 'me', 'key.pem'));
  const result = issue(dir);
  t.equal(result.status, 0, result.stderr);
  t.match(result.stdout, /key\.pem \(0600\)/);
  t.match(await readFile(join(dir, 'me', 'key.pem'), 'utf8'), /PRIVATE KEY-----/);
  t.equal(await modeOf(join(dir, 'me', 'key.pem')), 0o600);
});

t.test(
  "certs issue replaces a symlink at key.pem with a regular file and leaves the symlink's target untouched",
  async (t) => {
    const dir = await caIn(t);
    await mkdir(join(dir, 'me'));
    const key = join(dir, 'me', 'key.pem');
    const elsewhere = await symlinkElsewhere(dir, key);
    const result = issue(dir);
    t.equal(result.status, 0, result.stderr);
    await replacedNotFollowed(t, key, elsewhere);
  },
);

t.test(
  "certs init replaces a symlink at ca.key with a regular 0600 file and leaves the symlink's target untouched",
  async (t) => {
    const dir = await tempDir(t);
    await mkdir(join(dir, 'ca'));
    const key = join(dir, 'ca', 'ca.key');
    const elsewhere = await symlinkElsewhere(dir, key);
    const init = postern('certs', 'init', '--out', join(dir, 'ca'));
    t.equal(init.status, 0, init.stderr);
    await replacedNotFollowed(t, key, elsewhere);
  },
);

t.test('token create --out over an existing 0644 file leaves it 0600', async (t) => {
  const dir = await tempDir(t);
  const out = join(dir, 'orders.token');
  await worldReadable(out);
  const result = createToken(dir, out);
  t.equal(result.status, 0, result.stderr);
  t.match(result.stdout, /\(0600\)/);
  t.match(await readFile(out, 'utf8'), /^pst_/);
  t.equal(await modeOf(out), 0o600);
  t.equal(await modeOf(join(dir, 'state', 'tokens.json')), 0o600);
});

t.test(
  "token create --out replaces a symlink there with a regular file and leaves the symlink's target untouched",
  async (t) => {
    const dir = await tempDir(t);
    const out = join(dir, 'orders.token');
    const elsewhere = await symlinkElsewhere(dir, out);
    const result = createToken(dir, out);
    t.equal(result.status, 0, result.stderr);
    await replacedNotFollowed(t, out, elsewhere);
  },
);

t.test(
  'token create whose --out cannot be written leaves no token behind that nobody was shown (review)',
  async (t) => {
    const dir = await tempDir(t);
    const result = createToken(dir, join(dir, 'no-such-folder', 'orders.token'));
    t.not(result.status, 0);
    t.match(result.stderr, /ENOENT/);
    const tokens = JSON.parse(await readFile(join(dir, 'state', 'tokens.json'), 'utf8'));
    t.same(tokens, {}, 'the minted token was deleted again');
  },
);

t.test(
  'token create with a bad argument leaves an existing --out file as it was (review)',
  async (t) => {
    const dir = await tempDir(t);
    const out = join(dir, 'orders.token');
    await writeFile(out, 'pst_running-sidecar-token\n');
    const result = postern(
      'token',
      'create',
      '--state',
      join(dir, 'state'),
      '--workload',
      'Bad_Name',
      '--namespace',
      'shop',
      '--service-account',
      'orders',
      '--out',
      out,
    );
    t.equal(result.status, 2, result.stderr);
    t.equal(await readFile(out, 'utf8'), 'pst_running-sidecar-token\n');
  },
);
