import t from 'tap';
import {
  clientAddressOf,
  connectionNamed,
  downstreamResponseHeaders,
  OUTBOUND_HEADER_RULES,
  type RequestHeaderRules,
  scrubRequestHeadersInPlace,
  underscoreVerdict,
  upstreamRequestHeaders,
} from './headers.ts';

const ALLOW: RequestHeaderRules = { underscores: 'allow' };
const DROP: RequestHeaderRules = { underscores: 'drop' };
const PEER = clientAddressOf('::ffff:10.1.2.3', 'https');

/** [name, value, ...] as the lower-case names an app's server sees, with values, in order. */
function asPairs(flat: readonly string[]): [string, string][] {
  const pairs: [string, string][] = [];
  for (let i = 0; i < flat.length; i += 2) pairs.push([flat[i]!.toLowerCase(), flat[i + 1]!]);
  return pairs;
}

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
    ALLOW,
    undefined,
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
    ALLOW,
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
    scrubRequestHeadersInPlace(headers, ALLOW, undefined, ['x-postern-principal', 'real']);
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

// Finding 4: sidecar-owned names spelled with underscores.

const UNDERSCORE_TWINS = [
  'x_postern_principal',
  'forged',
  'X_Forwarded_Client_Cert',
  'forged',
  'x-postern_audit',
  'forged',
  'x_forwarded_for',
  '6.6.6.6',
  'X_REAL_IP',
  '6.6.6.6',
  'x_forwarded_proto',
  'http',
];

t.test(
  'identity headers spelled with underscores (x_postern_principal, x_forwarded_client_cert) were forwarded',
  async (t) => {
    for (const [direction, client] of [
      ['inbound', PEER],
      ['outbound', undefined],
    ] as const) {
      const out = upstreamRequestHeaders(
        [...UNDERSCORE_TWINS, 'x_custom_flag', 'kept'],
        undefined,
        direction === 'inbound' ? ALLOW : OUTBOUND_HEADER_RULES,
        client,
        [],
      );
      t.same(
        out.filter((_, i) => i % 2 === 0 && out[i]!.includes('_')),
        ['x_custom_flag'],
        `${direction}: only the name the sidecar does not own keeps its underscore`,
      );
    }
  },
);

t.test(
  'identity headers spelled with underscores were forwarded on the upgrade path',
  async (t) => {
    const headers: Record<string, string> = {
      upgrade: 'websocket',
      connection: 'Upgrade',
      x_custom_flag: 'kept',
    };
    for (let i = 0; i < UNDERSCORE_TWINS.length; i += 2)
      headers[UNDERSCORE_TWINS[i]!.toLowerCase()] = UNDERSCORE_TWINS[i + 1]!;
    scrubRequestHeadersInPlace(headers, ALLOW, undefined, []);
    t.same(headers, { upgrade: 'websocket', connection: 'Upgrade', x_custom_flag: 'kept' });
  },
);

t.test('--headers-with-underscores: allow keeps, drop drops, reject refuses', async (t) => {
  t.equal(underscoreVerdict('x_custom_flag', 'allow'), 'keep');
  t.equal(underscoreVerdict('x_custom_flag', 'drop'), 'drop');
  t.equal(underscoreVerdict('x_custom_flag', 'reject'), 'reject');
  t.equal(underscoreVerdict('x_postern_principal', 'allow'), 'drop', 'owned twins go under allow');
  t.equal(underscoreVerdict('x_real_ip', 'allow'), 'drop');
  t.equal(
    underscoreVerdict('x_postern_principal', 'reject'),
    'reject',
    'and are refused under reject',
  );
  const out = upstreamRequestHeaders(
    ['x_custom_flag', '1', 'x-custom-flag', '2'],
    undefined,
    DROP,
    undefined,
    [],
  );
  t.same(out, ['x-custom-flag', '2']);
});

t.test('reviewer next: a Proxy header (httpoxy) was forwarded, to become HTTP_PROXY', async (t) => {
  t.same(upstreamRequestHeaders(['Proxy', 'http://evil:3128'], undefined, ALLOW, PEER, []), [
    'x-forwarded-for',
    '10.1.2.3',
    'forwarded',
    'for=10.1.2.3;proto=https',
    'x-real-ip',
    '10.1.2.3',
    'x-forwarded-proto',
    'https',
  ]);
});

// Finding 8: Connection names.

t.test('Connection is parsed only when it names more than the usual token', async (t) => {
  t.equal(connectionNamed(undefined), undefined);
  t.equal(connectionNamed('keep-alive'), undefined);
  t.equal(connectionNamed('Close'), undefined);
  t.equal(connectionNamed('Upgrade'), undefined);
  t.same(
    [...connectionNamed('keep-alive, X-Tenant,,  Host ')!],
    ['keep-alive', 'x-tenant', 'host'],
  );
  t.same([...connectionNamed(['close', 'x-a'])!], ['close', 'x-a']);
});

// Finding 9: client-address headers.

t.test(
  'X-Forwarded-For, Forwarded and X-Real-IP were passed through as the client wrote them',
  async (t) => {
    const raw = [
      'Host',
      'orders',
      'X-Forwarded-For',
      '6.6.6.6',
      'x-forwarded-for',
      ' 7.7.7.7 ',
      'Forwarded',
      'for=6.6.6.6;proto=http',
      'X-Real-IP',
      '6.6.6.6',
      'X-Forwarded-Host',
      'shop.example',
      'X-Forwarded-Proto',
      'http',
    ];
    t.same(asPairs(upstreamRequestHeaders(raw, undefined, ALLOW, PEER, [])), [
      ['host', 'orders'],
      ['x-forwarded-host', 'shop.example'],
      ['x-forwarded-for', '6.6.6.6, 7.7.7.7, 10.1.2.3'],
      ['forwarded', 'for=6.6.6.6;proto=http, for=10.1.2.3;proto=https'],
      ['x-real-ip', '10.1.2.3'],
      ['x-forwarded-proto', 'https'],
    ]);
    t.same(
      asPairs(upstreamRequestHeaders(raw, undefined, OUTBOUND_HEADER_RULES, undefined, [])),
      [
        ['host', 'orders'],
        ['x-forwarded-for', '6.6.6.6'],
        ['x-forwarded-for', ' 7.7.7.7 '],
        ['forwarded', 'for=6.6.6.6;proto=http'],
        ['x-real-ip', '6.6.6.6'],
        ['x-forwarded-host', 'shop.example'],
      ],
      'outbound: the app speaks for itself (its X-Forwarded-Proto still goes)',
    );
  },
);

t.test('the upgrade path restates the client address the same way', async (t) => {
  const headers: Record<string, string> = {
    upgrade: 'websocket',
    connection: 'Upgrade',
    'x-forwarded-for': '6.6.6.6, 7.7.7.7', // Node joins repeated lines
    'x-real-ip': '6.6.6.6',
    'x-forwarded-host': 'shop.example',
  };
  scrubRequestHeadersInPlace(headers, ALLOW, PEER, ['x-postern-principal', 'p']);
  t.same(headers, {
    upgrade: 'websocket',
    connection: 'Upgrade',
    'x-forwarded-host': 'shop.example',
    'x-forwarded-for': '6.6.6.6, 7.7.7.7, 10.1.2.3',
    forwarded: 'for=10.1.2.3;proto=https',
    'x-real-ip': '10.1.2.3',
    'x-forwarded-proto': 'https',
    'x-postern-principal': 'p',
  });
});

t.test('a Connection-named X-Forwarded-For is dropped, and the peer still stated', async (t) => {
  t.same(
    asPairs(
      upstreamRequestHeaders(
        ['Connection', 'x-forwarded-for', 'X-Forwarded-For', '6.6.6.6'],
        'x-forwarded-for',
        ALLOW,
        PEER,
        [],
      ),
    ).slice(0, 1),
    [['x-forwarded-for', '10.1.2.3']],
  );
});

t.test(
  'the peer address: IPv4-mapped unwrapped, IPv6 quoted and bracketed for Forwarded',
  async (t) => {
    t.same(clientAddressOf('::ffff:192.0.2.7', 'https'), {
      ip: '192.0.2.7',
      forwarded: 'for=192.0.2.7;proto=https',
      proto: 'https',
    });
    t.same(clientAddressOf('2001:db8::1', 'https'), {
      ip: '2001:db8::1',
      forwarded: 'for="[2001:db8::1]";proto=https',
      proto: 'https',
    });
    t.equal(clientAddressOf(undefined, 'https').forwarded, 'for=unknown;proto=https');
  },
);
