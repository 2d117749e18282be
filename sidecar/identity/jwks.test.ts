import { once } from 'node:events';
import { createServer, type IncomingMessage, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { exportJWK, generateKeyPair, type JWK } from 'jose';
import t, { type Test } from 'tap';
import { Logger } from '../../common/log.ts';
import { JwksCache, type KeyLookup, parseKeySet } from './jwks.ts';

const quiet = new Logger('test', { fd: 1, maxQueued: 0 });

async function publicJwk(kid: string): Promise<JWK> {
  const { publicKey } = await generateKeyPair('ES256', { extractable: true });
  return { ...(await exportJWK(publicKey)), kid, alg: 'ES256', use: 'sig' };
}

/** A JWKS endpoint on loopback whose answer the test sets, counting requests. */
async function provider(t: Test) {
  let answer: (req: IncomingMessage, res: ServerResponse) => void = (_req, res) =>
    res.end('{"keys":[]}');
  const state = { requests: 0 };
  const server = createServer((req, res) => {
    state.requests++;
    answer(req, res);
  });
  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  t.teardown(() => {
    server.closeAllConnections();
    server.close();
  });
  return {
    uri: `http://127.0.0.1:${(server.address() as AddressInfo).port}/jwks`,
    state,
    publish(keys: JWK[]) {
      answer = (_req, res) => res.end(JSON.stringify({ keys }));
    },
    answerWith(handler: typeof answer) {
      answer = handler;
    },
  };
}

function clock(start = 1_000_000) {
  const c = { now: start, tick: (ms: number) => (c.now += ms) };
  return c;
}

const kidOf = (lookup: KeyLookup) => (lookup.ok ? lookup.jwk.kid : lookup.reason);

t.test('the first lookup fetches; later ones answer from the cache without waiting', async (t) => {
  const idp = await provider(t);
  const k1 = await publicJwk('k1');
  idp.publish([k1]);
  const time = clock();
  const jwks = new JwksCache({ uri: idp.uri, logger: quiet, now: () => time.now });
  const first = jwks.keyFor('k1');
  t.ok(first instanceof Promise, 'the first lookup waits for the fetch');
  t.equal(kidOf(await first), 'k1');
  const second = jwks.keyFor('k1');
  t.notOk(second instanceof Promise, 'a cached key is answered synchronously');
  t.equal(kidOf(second as KeyLookup), 'k1');
  t.equal(
    kidOf((await jwks.keyFor(undefined)) as KeyLookup),
    'k1',
    'a token without kid uses the only key',
  );
  t.equal(idp.state.requests, 1);
});

t.test('a flood of unknown kids costs one refetch per cooldown, not one per kid', async (t) => {
  const idp = await provider(t);
  idp.publish([await publicJwk('k1')]);
  const time = clock();
  const jwks = new JwksCache({
    uri: idp.uri,
    logger: quiet,
    now: () => time.now,
    cooldownMs: 30_000,
  });
  await jwks.keyFor('k1');
  time.tick(30_000);
  const lookups = await Promise.all(
    Array.from({ length: 200 }, (_, i) => jwks.keyFor(`random-${i}`)),
  );
  t.ok(lookups.every((l) => !l.ok && l.reason === 'unknown-kid'));
  t.equal(idp.state.requests, 2, 'the first fetch and one refetch');
  time.tick(10_000);
  for (let i = 0; i < 100; i++) await jwks.keyFor(`more-${i}`);
  t.equal(idp.state.requests, 2, 'none within the cooldown');
  time.tick(20_000);
  await jwks.keyFor('after-cooldown');
  t.equal(idp.state.requests, 3, 'one more once it has passed');
});

t.test(
  'a key rotated in at the provider is found, and one rotated out stops working',
  async (t) => {
    const idp = await provider(t);
    const [k1, k2] = [await publicJwk('k1'), await publicJwk('k2')];
    idp.publish([k1]);
    const time = clock();
    const jwks = new JwksCache({
      uri: idp.uri,
      logger: quiet,
      now: () => time.now,
      cooldownMs: 30_000,
      refreshAfterMs: 300_000,
    });
    t.equal(kidOf(await jwks.keyFor('k1')), 'k1');
    idp.publish([k1, k2]);
    time.tick(30_000);
    t.equal(kidOf(await jwks.keyFor('k2')), 'k2', 'the new kid triggered a refetch');
    idp.publish([k2]);
    time.tick(300_000);
    t.equal(kidOf(await jwks.keyFor('k1')), 'k1', 'served from the cache while the refresh runs');
    await new Promise((resolve) => setTimeout(resolve, 100));
    t.equal(kidOf(await jwks.keyFor('k1')), 'unknown-kid', 'gone after the background refresh');
  },
);

t.test(
  'with the provider down, held keys keep working for the stale bound, then fail closed',
  async (t) => {
    const idp = await provider(t);
    idp.publish([await publicJwk('k1')]);
    const time = clock();
    const jwks = new JwksCache({
      uri: idp.uri,
      logger: quiet,
      now: () => time.now,
      refreshAfterMs: 60_000,
      maxStaleMs: 600_000,
    });
    await jwks.keyFor('k1');
    idp.answerWith((_req, res) => {
      res.statusCode = 503;
      res.end();
    });
    time.tick(120_000);
    t.equal(kidOf(await jwks.keyFor('k1')), 'k1', 'the failed refresh keeps the key');
    time.tick(479_000);
    t.equal(kidOf(await jwks.keyFor('k1')), 'k1', 'still within the stale bound');
    time.tick(2_000);
    t.equal(kidOf(await jwks.keyFor('k1')), 'stale', 'past it, refused');
  },
);

t.test(
  'a provider never reached, slow or answering garbage leaves nothing to verify with',
  async (t) => {
    const idp = await provider(t);
    const time = clock();
    idp.answerWith(() => {}); // never answers
    const slow = new JwksCache({
      uri: idp.uri,
      logger: quiet,
      now: () => time.now,
      timeoutMs: 200,
    });
    t.equal(kidOf(await slow.keyFor('k1')), 'unavailable', 'a fetch that never answers times out');
    t.equal(
      kidOf((await slow.keyFor('k1')) as KeyLookup),
      'unavailable',
      'no refetch within the cooldown',
    );
    t.equal(slow.fetches, 1);

    idp.answerWith((_req, res) => res.end('<html>not a key set</html>'));
    const garbage = new JwksCache({ uri: idp.uri, logger: quiet, now: () => time.now });
    t.equal(kidOf(await garbage.keyFor('k1')), 'unavailable');

    idp.answerWith((_req, res) =>
      res.end(`{"keys":[${'{"kty":"oct","k":"x"},'.repeat(40_000)}{}]}`),
    );
    const huge = new JwksCache({
      uri: idp.uri,
      logger: quiet,
      now: () => time.now,
      maxBytes: 64 * 1024,
    });
    t.equal(kidOf(await huge.keyFor('k1')), 'unavailable', 'an oversized set is refused');
  },
);

t.test('garbage from a provider that worked before does not empty the cache', async (t) => {
  const idp = await provider(t);
  idp.publish([await publicJwk('k1')]);
  const time = clock();
  const jwks = new JwksCache({
    uri: idp.uri,
    logger: quiet,
    now: () => time.now,
    refreshAfterMs: 1_000,
  });
  await jwks.keyFor('k1');
  idp.answerWith((_req, res) => res.end('{"keys":[]}'));
  time.tick(60_000);
  jwks.keyFor('k1');
  await new Promise((resolve) => setTimeout(resolve, 100));
  t.equal(kidOf((await jwks.keyFor('k1')) as KeyLookup), 'k1');
});

t.test('a key set keeps only public signing keys', async (t) => {
  const pub = await publicJwk('pub');
  const keys = parseKeySet(
    JSON.stringify({
      keys: [
        pub,
        { kty: 'oct', kid: 'hmac', k: 'c2VjcmV0' },
        { ...pub, kid: 'private', d: 'x' },
        { ...pub, kid: 'encryption', use: 'enc' },
        'not a key',
      ],
    }),
  );
  t.same([...keys.keys()], ['pub']);
  t.throws(() => parseKeySet('{"keys":[{"kty":"oct","k":"x"}]}'), /no public signing key/);
  t.throws(() => parseKeySet('[]'), /no "keys" array/);
  t.throws(() => parseKeySet('nope'), /not JSON/);
});

t.test(
  'after a refetch the set still holds a key that stayed, and not one rotated out',
  async (t) => {
    const idp = await provider(t);
    const [k1, k2] = [await publicJwk('k1'), await publicJwk('k2')];
    idp.publish([k1, k2]);
    const time = clock();
    const jwks = new JwksCache({
      uri: idp.uri,
      logger: quiet,
      now: () => time.now,
      cooldownMs: 1_000,
    });
    const held = (await jwks.keyFor('k1')) as KeyLookup & { ok: true };
    const version = jwks.version;
    idp.publish([k2]);
    time.tick(1_000);
    await jwks.keyFor('k3'); // an unknown kid: refetch
    t.equal(jwks.version, version + 1);
    t.notOk(jwks.holds(held.jwk), 'k1 was rotated out');
    t.ok(jwks.holds(((await jwks.keyFor('k2')) as KeyLookup & { ok: true }).jwk));
    idp.publish([k2]);
    time.tick(1_000);
    const k2Before = ((await jwks.keyFor('k2')) as KeyLookup & { ok: true }).jwk;
    await jwks.keyFor('k4');
    t.ok(jwks.holds(k2Before), 'the same key fetched again is the same key');
  },
);

t.test(
  'freshness, asked on every cached-token hit, refreshes the set when due and ends at the stale bound',
  async (t) => {
    const idp = await provider(t);
    idp.publish([await publicJwk('k1')]);
    const time = clock();
    const jwks = new JwksCache({
      uri: idp.uri,
      logger: quiet,
      now: () => time.now,
      refreshAfterMs: 60_000,
      maxStaleMs: 600_000,
      cooldownMs: 1_000,
    });
    t.notOk(jwks.fresh(), 'nothing fetched yet');
    await jwks.keyFor('k1');
    t.ok(jwks.fresh());
    t.equal(idp.state.requests, 1, 'a fresh set is not refetched');
    idp.publish([await publicJwk('k2')]);
    time.tick(61_000);
    t.ok(jwks.fresh(), 'due for refresh, still trusted meanwhile');
    // Started in the background; the lookup below would join it, so wait for the request itself.
    while (idp.state.requests < 2) await new Promise((resolve) => setTimeout(resolve, 5));
    t.equal(kidOf(await jwks.keyFor('k2')), 'k2');
    idp.answerWith((req) => req.socket.destroy());
    time.tick(601_000);
    t.notOk(jwks.fresh(), 'past the stale bound with every refresh failing');
  },
);

t.test(
  'a failed fetch logs what it costs: 503s before any keys, nothing while held keys last, 401s past the stale bound',
  async (t) => {
    const lines: string[] = [];
    const capture = new (class extends Logger {
      override warn(msg: string) {
        lines.push(`warn: ${msg}`);
      }
      override error(msg: string) {
        lines.push(`error: ${msg}`);
      }
    })('test', { fd: 1, maxQueued: 0 });
    const idp = await provider(t);
    const time = clock();
    const jwks = new JwksCache({
      uri: idp.uri,
      logger: capture,
      now: () => time.now,
      refreshAfterMs: 60_000,
      maxStaleMs: 600_000,
      cooldownMs: 1_000,
    });
    idp.answerWith((req) => req.socket.destroy());
    await jwks.keyFor('k1');
    t.match(lines.pop(), /^error: .*no keys were ever fetched: tokens get 503/);
    idp.publish([await publicJwk('k1')]);
    time.tick(2_000);
    await jwks.keyFor('k1');
    idp.answerWith((req) => req.socket.destroy());
    time.tick(61_000);
    await jwks.keyFor('other');
    t.match(lines.pop(), /^warn: JWKS fetch failed; keeping the keys held/);
    time.tick(600_000);
    t.equal(kidOf(await jwks.keyFor('k1')), 'stale', 'refused at once; the refresh runs behind');
    while (!lines.length) await new Promise((resolve) => setTimeout(resolve, 5));
    t.match(lines.pop(), /^error: .*past the stale bound: tokens get 401/);
  },
);
