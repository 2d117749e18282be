import t from 'tap';
import {
  downstreamResponseHeaders,
  scrubRequestHeadersInPlace,
  upstreamRequestHeaders,
} from './headers.ts';

t.test('hop-by-hop headers and those Connection names are dropped from requests', async (t) => {
  const out = upstreamRequestHeaders(
    [
      'Host',
      'orders',
      'Connection',
      'keep-alive, X-Trace-Hop',
      'Keep-Alive',
      'timeout=5',
      'X-Trace-Hop',
      '1',
      'TE',
      'trailers',
      'Transfer-Encoding',
      'chunked',
      'Accept',
      'a',
      'Accept',
      'b',
    ],
    'keep-alive, X-Trace-Hop',
    [],
  );
  t.same(out, ['Host', 'orders', 'Accept', 'a', 'Accept', 'b']);
});

t.test('identity headers from the client are dropped and the sidecar adds its own', async (t) => {
  const out = upstreamRequestHeaders(
    [
      'X-Postern-Principal',
      'forged',
      'x-forwarded-client-cert',
      'forged',
      'x-postern-decision',
      'allow',
      'x-other',
      'kept',
    ],
    undefined,
    ['x-postern-principal', 'spiffe://cluster.local/ns/shop/sa/frontend'],
  );
  t.same(out, [
    'x-other',
    'kept',
    'x-postern-principal',
    'spiffe://cluster.local/ns/shop/sa/frontend',
  ]);
});

t.test(
  'an upgrade request keeps Upgrade and Connection but loses identity and other hop-by-hop headers',
  async (t) => {
    const headers: Record<string, string> = {
      upgrade: 'websocket',
      connection: 'Upgrade',
      'keep-alive': '5',
      'x-postern-principal': 'forged',
      host: 'orders',
    };
    scrubRequestHeadersInPlace(headers, { 'x-postern-principal': 'real' });
    t.same(headers, {
      upgrade: 'websocket',
      connection: 'Upgrade',
      host: 'orders',
      'x-postern-principal': 'real',
    });
  },
);

t.test(
  'hop-by-hop headers are dropped from responses, others kept with their repeated values',
  async (t) => {
    t.same(
      downstreamResponseHeaders({
        connection: 'close, x-hop',
        'x-hop': '1',
        'transfer-encoding': 'chunked',
        'set-cookie': ['a=1', 'b=2'],
        'content-type': 'text/plain',
      }),
      {
        'set-cookie': ['a=1', 'b=2'],
        'content-type': 'text/plain',
      },
    );
  },
);
