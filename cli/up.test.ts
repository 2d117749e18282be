import { chmod, lstat, mkdir, readFile, stat, symlink, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import t from 'tap';
import { CertificateAuthority } from '../certs/authority.ts';
import { statePaths } from '../control-plane/state.ts';
import { TokenStore } from '../control-plane/tokens.ts';
import { tempDir } from '../test/helpers.ts';
import { testerCertificate, tokenFile } from './up.ts';

const modeOf = async (path: string) => (await stat(path)).mode & 0o777;

t.test(
  "postern up's tester key.pem is 0600 even where a world-readable key.pem already was",
  async (t) => {
    const state = await tempDir(t);
    const key = join(state, 'clients', 'tester', 'key.pem');
    await mkdir(join(state, 'clients', 'tester'), { recursive: true });
    await writeFile(key, 'old key\n', { mode: 0o644 });
    const ca = await CertificateAuthority.create('cluster.local');
    await testerCertificate(ca, state);
    t.match(await readFile(key, 'utf8'), /PRIVATE KEY-----/);
    t.equal(await modeOf(key), 0o600);
  },
);

t.test(
  "postern up's tester key.pem replaces a symlink there and leaves the symlink's target untouched",
  async (t) => {
    const state = await tempDir(t);
    const elsewhere = join(state, 'elsewhere.txt');
    await writeFile(elsewhere, 'not yours\n', { mode: 0o644 });
    const key = join(state, 'clients', 'tester', 'key.pem');
    await mkdir(join(state, 'clients', 'tester'), { recursive: true });
    await symlink(elsewhere, key);
    await testerCertificate(await CertificateAuthority.create('cluster.local'), state);
    t.ok((await lstat(key)).isFile());
    t.equal(await modeOf(key), 0o600);
    t.equal(await readFile(elsewhere, 'utf8'), 'not yours\n');
    t.equal(await modeOf(elsewhere), 0o644);
  },
);

t.test(
  "postern up's token file is minted 0600, and a world-readable one left from before keeps its token but becomes 0600",
  async (t) => {
    const state = await tempDir(t);
    const store = new TokenStore(statePaths(state).tokens, 'cluster.local');
    const file = await tokenFile(store, state, 'orders');
    t.equal(await modeOf(file), 0o600);
    const token = (await readFile(file, 'utf8')).trim();
    t.equal((await store.verify(token))?.workload, 'orders');

    await chmod(file, 0o644);
    t.equal(await tokenFile(store, state, 'orders'), file);
    t.equal((await readFile(file, 'utf8')).trim(), token, 'the same token is kept');
    t.equal(await modeOf(file), 0o600);
  },
);

t.test(
  "postern up's token file replaces a symlink there with a new token and leaves the symlink's target untouched",
  async (t) => {
    const state = await tempDir(t);
    const elsewhere = join(state, 'elsewhere.txt');
    await writeFile(elsewhere, 'not yours\n', { mode: 0o644 });
    await mkdir(join(state, 'tokens'), { recursive: true });
    const file = join(state, 'tokens', 'orders.token');
    await symlink(elsewhere, file);
    const store = new TokenStore(statePaths(state).tokens, 'cluster.local');
    await tokenFile(store, state, 'orders');
    t.ok((await lstat(file)).isFile());
    t.equal(await modeOf(file), 0o600);
    t.equal((await store.verify(await readFile(file, 'utf8')))?.workload, 'orders');
    t.equal(await readFile(elsewhere, 'utf8'), 'not yours\n');
    t.equal(await modeOf(elsewhere), 0o644);
  },
);
