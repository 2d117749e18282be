import { mkdtemp, readFile, stat, utimes, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import t from 'tap';
import { labelsOf, TokenStore } from './tokens.ts';

async function store(now: () => number = Date.now) {
  const file = join(await mkdtemp(join(tmpdir(), 'postern-tokens-')), 'tokens.json');
  return { file, tokens: new TokenStore(file, 'cluster.local', now) };
}

t.test(
  'a token proves the one identity it was minted for, and is stored only hashed',
  async (t) => {
    const { file, tokens } = await store();
    const token = await tokens.create('orders', 'shop', 'orders');
    t.match(await tokens.verify(token), {
      workload: 'orders',
      spiffeId: 'spiffe://cluster.local/ns/shop/sa/orders',
    });
    t.notMatch(await readFile(file, 'utf8'), token, 'the token itself is not on disk');
    t.equal((await stat(file)).mode & 0o777, 0o600);
    t.equal(await tokens.verify(`${token}x`), undefined);
  },
);

t.test(
  'a token with a TTL stops bootstrapping at its expiry, its binding stays for renewals',
  async (t) => {
    let now = Date.parse('2026-11-25T10:00:00Z');
    const { tokens } = await store(() => now);
    const token = await tokens.create('orders', 'shop', 'orders', 3600_000);
    now += 3600_000 - 1;
    t.ok(await tokens.verify(token), 'valid just before expiry');
    now += 1;
    t.equal(await tokens.verify(token), undefined, 'refused at expiry');
    t.ok(
      await tokens.isBound('spiffe://cluster.local/ns/shop/sa/orders'),
      'sidecars already running still renew',
    );
  },
);

t.test('names that are not DNS names are refused with what was expected', async (t) => {
  const { tokens } = await store();
  await t.rejects(tokens.create('Orders', 'shop', 'orders'), {
    code: 'POSTERN_CONFIG',
    message: /workload "Orders" is not a DNS label/,
  });
  await t.rejects(tokens.create('orders', 'shop', 'bad_sa'), {
    message: /service account "bad_sa" is not a DNS subdomain/,
  });
});

t.test('revoking an identity removes all its tokens and its binding', async (t) => {
  const { tokens } = await store();
  const a = await tokens.create('orders', 'shop', 'orders');
  await tokens.create('orders-canary', 'shop', 'orders');
  await tokens.create('frontend', 'shop', 'frontend');
  t.equal(await tokens.revoke('spiffe://cluster.local/ns/shop/sa/orders'), 2);
  t.equal(await tokens.verify(a), undefined);
  t.notOk(await tokens.isBound('spiffe://cluster.local/ns/shop/sa/orders'));
  t.ok(await tokens.isBound('spiffe://cluster.local/ns/shop/sa/frontend'));
});

t.test(
  'lookups answer from memory and re-read the file only when it changed (every certificate request re-read and parsed it)',
  async (t) => {
    const { file, tokens } = await store();
    const orders = await tokens.create('orders', 'shop', 'orders');
    // A whole-second mtime, so it can be put back exactly after an in-place edit.
    await utimes(file, 1_700_000_000, 1_700_000_000);
    t.ok(await tokens.verify(orders), 'loaded once');
    // Same inode, size and mtime, different content: only a re-read could see it.
    const text = await readFile(file, 'utf8');
    const tampered = text.replace('"orders"', '"ORDERS"');
    t.equal(tampered.length, text.length);
    await writeFile(file, tampered);
    await utimes(file, 1_700_000_000, 1_700_000_000);
    t.match(await tokens.verify(orders), { workload: 'orders' }, 'answered from memory');

    // Another process minting a token replaces the file: the next lookup sees it.
    const other = new TokenStore(file, 'cluster.local');
    const frontend = await other.create('frontend', 'shop', 'frontend');
    t.match(await tokens.verify(frontend), { workload: 'frontend' });
    await other.revoke('spiffe://cluster.local/ns/shop/sa/frontend');
    t.equal(await tokens.verify(frontend), undefined, 'and a revocation');
  },
);

t.test(
  'watch reports a change made by another process, with the index already fresh',
  async (t) => {
    const { file, tokens } = await store();
    await tokens.create('orders', 'shop', 'orders');
    const id = 'spiffe://cluster.local/ns/shop/sa/orders';
    t.ok(await tokens.isBound(id));
    // revoke writes revocations.json, then tokens.json: a callback follows each.
    const unbound = new Promise<void>((resolve, reject) =>
      tokens.watch(() => {
        if (!tokens.bindingNow('orders', id) && tokens.revocationsNow().has(id)) resolve();
      }, reject),
    );
    t.teardown(() => tokens.close());
    await new TokenStore(file, 'cluster.local').revoke(id);
    await unbound;
    t.pass('a callback saw the binding gone and the revocation recorded');
  },
);

t.test('a binding carries the labels it was minted with, app=<workload> by default', async (t) => {
  const { tokens } = await store();
  await tokens.create('orders', 'shop', 'orders');
  const id = 'spiffe://cluster.local/ns/shop/sa/orders';
  t.same(labelsOf((await tokens.bindingFor('orders', id))!), { app: 'orders' });
  await tokens.create('orders', 'shop', 'orders', undefined, { app: 'orders', tier: 'backend' });
  t.same(
    labelsOf((await tokens.bindingFor('orders', id))!),
    { app: 'orders', tier: 'backend' },
    'the newest binding relabels the workload',
  );
  t.same(labelsOf({ workload: 'legacy' } as never), { app: 'legacy' }, 'files from before labels');
});

t.test('a revocation is recorded with its time, even for an identity re-bound later', async (t) => {
  const now = Date.parse('2026-11-25T10:00:00Z');
  const { tokens } = await store(() => now);
  await tokens.create('orders', 'shop', 'orders');
  t.equal(await tokens.revoke('spiffe://cluster.local/ns/shop/sa/orders'), 1);
  await tokens.create('orders', 'shop', 'orders');
  await tokens.refresh();
  t.same(
    [...tokens.revocationsNow()],
    [['spiffe://cluster.local/ns/shop/sa/orders', now + 2_000]],
    'stamped a little after the tokens went (see revoke)',
  );
  t.ok(await tokens.isBound('spiffe://cluster.local/ns/shop/sa/orders'), 'bound again');
});

t.test(
  'two revocations at once both hold (the second read-modify-write lost the first; review)',
  async (t) => {
    const { file, tokens } = await store();
    await tokens.create('orders', 'shop', 'orders');
    await tokens.create('frontend', 'shop', 'frontend');
    const other = new TokenStore(file, 'cluster.local');
    await Promise.all([
      tokens.revoke('spiffe://cluster.local/ns/shop/sa/orders'),
      other.revoke('spiffe://cluster.local/ns/shop/sa/frontend'),
      other.create('billing', 'shop', 'billing'),
    ]);
    await tokens.refresh();
    t.same([...tokens.revocationsNow().keys()].sort(), [
      'spiffe://cluster.local/ns/shop/sa/frontend',
      'spiffe://cluster.local/ns/shop/sa/orders',
    ]);
    t.notOk(await tokens.isBound('spiffe://cluster.local/ns/shop/sa/orders'));
    t.notOk(await tokens.isBound('spiffe://cluster.local/ns/shop/sa/frontend'));
    t.ok(await tokens.isBound('spiffe://cluster.local/ns/shop/sa/billing'), 'and the creation too');
  },
);

t.test('forget deletes the one token it is given', async (t) => {
  const { tokens } = await store();
  const kept = await tokens.create('orders', 'shop', 'orders');
  const dropped = await tokens.create('orders', 'shop', 'orders');
  await tokens.forget(dropped);
  t.equal(await tokens.verify(dropped), undefined);
  t.ok(await tokens.verify(kept));
});

t.test('a malformed token file is named in the error', async (t) => {
  const { file, tokens } = await store();
  await writeFile(file, '{ not json');
  await t.rejects(tokens.refresh(), {
    code: 'POSTERN_CONFIG',
    message: /tokens\.json is not valid JSON/,
  });
});

t.test(
  'a revocation entry that is not a time names the file and the identity, and the last good index stays (it crashed the control plane; review)',
  async (t) => {
    const { file, tokens } = await store();
    await tokens.create('orders', 'shop', 'orders');
    await tokens.revoke('spiffe://cluster.local/ns/shop/sa/orders');
    await tokens.refresh();
    const revocations = join(dirname(file), 'revocations.json');
    await writeFile(
      revocations,
      JSON.stringify({ 'spiffe://cluster.local/ns/shop/sa/x': '25/11/2026' }),
    );
    await t.rejects(tokens.refresh(), {
      code: 'POSTERN_CONFIG',
      message:
        /revocations\.json: the revocation of spiffe:\/\/cluster\.local\/ns\/shop\/sa\/x is "25\/11\/2026"; expected an RFC 3339 time/,
    });
    t.ok(tokens.revocationsNow().has('spiffe://cluster.local/ns/shop/sa/orders'), 'kept');
  },
);
