import { readFile } from 'node:fs/promises';
import type { IncomingMessage } from 'node:http';
import { join } from 'node:path';
import t from 'tap';
import { eventually } from '../../test/helpers.ts';
import type { Exchange } from '../filters/filter.ts';
import { decision } from '../policy/decision.ts';
import { openAccessLog } from './access-log.ts';

function exchange(fields: Partial<Exchange>): Exchange {
  const req = {
    method: 'GET',
    url: '/orders/%31',
    headers: { 'content-length': '12' },
    socket: { remoteAddress: '10.0.0.7' },
  } as unknown as IncomingMessage;
  return { req, startedAt: performance.now() - 2, ...fields };
}

t.test('each request is one JSON line with what the sidecar decided', async (t) => {
  const file = join(t.testdir(), 'logs', 'access.log');
  const log = openAccessLog(file, { workload: 'orders', pod: 'orders-1' });
  const observer = log.observer('inbound');
  observer.end(
    exchange({
      target: { path: '/orders/1', search: '' } as Exchange['target'],
      principal: 'spiffe://cluster.local/ns/shop/sa/frontend',
      claims: { sub: 'user-1' },
      decision: decision({
        allowed: true,
        reason: 'allow-rule-matched',
        mode: 'enforce',
        policy: 'shop/orders-api',
        route: 'get-order',
      }),
      responseBytes: 512,
      rateLimit: 'allowed',
    }),
    200,
  );
  observer.end(exchange({}), 400);
  log.close();
  await eventually(async () =>
    (await readFile(file, 'utf8').catch(() => '')).includes('"status":400'),
  );
  const lines = (await readFile(file, 'utf8'))
    .trim()
    .split('\n')
    .map((line) => JSON.parse(line));
  t.equal(lines.length, 2);
  t.match(lines[0], {
    workload: 'orders',
    pod: 'orders-1',
    direction: 'inbound',
    method: 'GET',
    path: '/orders/1',
    status: 200,
    requestBytes: 12,
    responseBytes: 512,
    client: '10.0.0.7',
    principal: 'spiffe://cluster.local/ns/shop/sa/frontend',
    subject: 'user-1',
    policy: 'shop/orders-api',
    route: 'get-order',
    decision: 'allow',
    rateLimit: 'allowed',
  });
  t.ok(Date.parse(lines[0].time) > 0, 'an ISO time');
  t.ok(lines[0].durationMs >= 0);
  t.match(
    lines[1],
    { status: 400, path: '/orders/%31' },
    'a request refused before canonicalising logs its raw target',
  );
  t.notOk('principal' in lines[1], 'absent facts are left out, not null');
});

t.test(
  'lines are batched, and a quiet log still reaches its file within a second or so',
  async (t) => {
    const file = join(t.testdir(), 'access.log');
    const log = openAccessLog(file, { workload: 'orders', pod: 'orders-1' });
    t.teardown(() => log.close());
    log.observer('inbound').end(exchange({}), 204);
    await eventually(
      async () => (await readFile(file, 'utf8').catch(() => '')).includes('"status":204'),
      5_000,
    );
    t.pass('written without a close');
  },
);
