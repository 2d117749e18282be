import { X509Certificate } from 'node:crypto';
import { readFile, stat, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import t from 'tap';
import { CertificateAuthority } from '../certs/authority.ts';
import { generateKeyPair } from '../certs/x509.ts';
import { trustBundleId, type UnconfirmedSidecar } from '../common/wire.ts';
import { tempDir, testLogger } from '../test/helpers.ts';
import { MeshAuthority } from './mesh-authority.ts';
import { RootRotation } from './root-rotation.ts';
import { ROTATION_FILE } from './root-store.ts';

const ORDERS = 'spiffe://cluster.local/ns/shop/sa/orders';
const MINUTE = 60_000;
const LEAF_LIFETIME_MS = 60 * MINUTE;
const quiet = testLogger('control-plane');

/** A clock the test moves by hand. */
function clock(start = Date.parse('2026-11-25T10:00:00Z')) {
  let now = start;
  return { now: () => now, advance: (ms: number) => (now += ms) };
}

const rootsIn = (bundlePem: string) =>
  (bundlePem.match(/-----BEGIN CERTIFICATE-----/g) ?? []).length;

/** Which root signed `leafPem`: its public key verifies the signature. */
function signedBy(leafPem: string, root: CertificateAuthority): boolean {
  return new X509Certificate(leafPem).verify(new X509Certificate(root.certPem).publicKey);
}

async function leafFrom(authority: MeshAuthority): Promise<string> {
  const keys = await generateKeyPair();
  return authority.issue(keys.publicKey, { uris: [ORDERS], ttlMs: LEAF_LIFETIME_MS });
}

t.test(
  'each rotation step is on disk before it takes effect, and a restart resumes the phase with the same roots',
  async (t) => {
    const dir = await tempDir(t);
    const time = clock();
    let authority = await MeshAuthority.open(dir, 'cluster.local', time.now);
    const old = authority.current;
    const reopen = async () => {
      authority = await MeshAuthority.open(dir, 'cluster.local', time.now);
      return authority;
    };

    const prepared = await authority.startRotation(5 * MINUTE);
    t.equal((await stat(join(dir, ROTATION_FILE))).mode & 0o777, 0o600, 'the record holds keys');
    await reopen();
    t.equal(authority.roots.phase, 'prepared', 'restarted: still prepared');
    t.equal(authority.current.certPem, old.certPem, 'the old root still signs');
    t.equal(rootsIn(authority.bundlePem), 2, 'both roots are trusted');
    t.ok(signedBy(await leafFrom(authority), old), 'certificates come from the old root');
    t.equal(await readFile(join(dir, 'bundle.pem'), 'utf8'), authority.bundlePem);

    time.advance(10 * MINUTE);
    await authority.activate(LEAF_LIFETIME_MS);
    await reopen();
    t.equal(authority.roots.phase, 'active', 'restarted: still active');
    t.equal(authority.current.certPem, prepared.next.certPem, 'the new root signs');
    t.ok(signedBy(await leafFrom(authority), prepared.next), 'certificates come from the new root');
    t.equal(rootsIn(authority.bundlePem), 2, 'the old root is still trusted');
    const tools = await CertificateAuthority.load(dir);
    t.equal(tools.certPem, prepared.next.certPem, '`certs issue --ca` signs with the new root too');
    t.equal(tools.bundlePem, authority.bundlePem, 'and hands out the whole bundle');

    time.advance(LEAF_LIFETIME_MS);
    await authority.retire();
    await reopen();
    t.equal(authority.roots.phase, 'steady');
    t.equal(authority.bundlePem, prepared.next.certPem, 'only the new root is trusted');
    await t.rejects(stat(join(dir, ROTATION_FILE)), { code: 'ENOENT' }, 'the record is gone');
  },
);

t.test('a step a crash interrupted is completed at the next start', async (t) => {
  const dir = await tempDir(t);
  const authority = await MeshAuthority.open(dir, 'cluster.local');
  const oneRoot = await readFile(join(dir, 'bundle.pem'), 'utf8');
  await authority.startRotation(MINUTE);
  // The record was written, the bundle file not yet.
  await writeFile(join(dir, 'bundle.pem'), oneRoot);
  const restarted = await MeshAuthority.open(dir, 'cluster.local');
  t.equal(rootsIn(await readFile(join(dir, 'bundle.pem'), 'utf8')), 2);
  t.equal(restarted.roots.phase, 'prepared');
});

t.test('a rotation record that is not one is an error naming the file', async (t) => {
  const dir = await tempDir(t);
  await MeshAuthority.open(dir, 'cluster.local');
  await writeFile(join(dir, ROTATION_FILE), JSON.stringify({ phase: 'prepared', signing: {} }));
  await t.rejects(MeshAuthority.open(dir, 'cluster.local'), {
    code: 'POSTERN_CONFIG',
    message: new RegExp(`${ROTATION_FILE}: signing needs "cert" and "key"`),
  });
});

t.test(
  'the new root signs once every connected sidecar confirmed it, and the old root leaves one leaf lifetime later',
  async (t) => {
    const time = clock();
    const authority = await MeshAuthority.open(await tempDir(t), 'cluster.local', time.now);
    // The sidecars' acks as the snapshot hub would record them: the bundle each one named last.
    const acked = new Map<string, string>([['orders', trustBundleId(authority.bundlePem)]]);
    const unconfirmed = (bundleId: string): UnconfirmedSidecar[] =>
      [...acked]
        .filter(([, bundle]) => bundle !== bundleId)
        .map(([workload]) => ({ workload, namespace: 'shop', spiffeId: ORDERS }));
    const rotation = new RootRotation({
      authority,
      unconfirmed,
      leafLifetimeMs: LEAF_LIFETIME_MS,
      logger: quiet,
      now: time.now,
    });
    t.teardown(() => rotation.close());

    const started = await rotation.start(5 * MINUTE);
    t.equal(started.phase, 'prepared');
    t.same(
      started.roots.map((r) => r.role),
      ['signing', 'next'],
    );
    t.same(
      started.waitingFor?.map((s) => s.workload),
      ['orders'],
      'orders still names the old bundle',
    );
    const lastOldLeaf = await leafFrom(authority);

    time.advance(5 * MINUTE);
    await rotation.check();
    t.equal(authority.roots.phase, 'prepared', 'time enough, but orders has not confirmed');

    acked.set('orders', trustBundleId(authority.bundlePem));
    await rotation.check();
    t.equal(authority.roots.phase, 'active', 'orders confirmed: the new root signs');
    const active = rotation.status();
    t.equal(active.retireAt, new Date(time.now() + LEAF_LIFETIME_MS).toISOString());
    t.ok(
      Date.parse(new X509Certificate(lastOldLeaf).validTo) <= Date.parse(active.retireAt!),
      'the last certificate of the old root expires before the root leaves the bundle',
    );

    time.advance(LEAF_LIFETIME_MS - 1);
    await rotation.check();
    t.equal(authority.roots.phase, 'active', 'a millisecond early: still trusted');
    time.advance(1);
    await rotation.check();
    t.equal(rotation.status().phase, 'steady');
    t.same(
      rotation.status().roots.map((r) => r.role),
      ['signing'],
    );
  },
);

t.test(
  'an operator switches to the new root without waiting, and cannot start a second rotation meanwhile',
  async (t) => {
    const time = clock();
    const authority = await MeshAuthority.open(await tempDir(t), 'cluster.local', time.now);
    const rotation = new RootRotation({
      authority,
      unconfirmed: () => [{ workload: 'stuck', namespace: 'shop', spiffeId: ORDERS }],
      leafLifetimeMs: LEAF_LIFETIME_MS,
      logger: quiet,
      now: time.now,
    });
    t.teardown(() => rotation.close());
    let signerChanges = 0;
    authority.onChange(({ signerChanged }) => {
      if (signerChanged) signerChanges++;
    });

    await rotation.start(5 * MINUTE);
    await t.rejects(rotation.start(5 * MINUTE), { code: 'POSTERN_ROTATION_IN_PROGRESS' });
    const switched = await rotation.activate();
    t.equal(switched.phase, 'active', 'switched although a sidecar never confirmed');
    t.equal(signerChanges, 1, 'those who follow the signer were told once');
    await t.rejects(rotation.activate(), { code: 'POSTERN_NO_PREPARED_ROOT' });
  },
);
