import type { IncomingMessage } from 'node:http';
import t from 'tap';
import type { JwtProvider } from '../../common/policy/schema.ts';
import { claimHeaderValue } from './claim-headers.ts';
import { MAX_TOKEN_BYTES } from './jwt-verifier.ts';
import { cookiesWithout, findToken, TokenSources } from './token-sources.ts';

const provider = (fields: Partial<JwtProvider> = {}): JwtProvider => ({
  issuer: 'https://idp',
  jwksUri: 'https://idp/jwks',
  ...fields,
});

/** The two views of the headers Node gives findToken, from a raw [name, value, ...] list. */
function requestWith(raw: string[]): IncomingMessage {
  const headers: Record<string, string> = {};
  for (let i = 0; i < raw.length; i += 2) {
    const name = raw[i]!.toLowerCase();
    // As Node does: the first Authorization wins, cookies join with '; ', others with ', '.
    if (name === 'authorization' && headers[name] !== undefined) continue;
    const joiner = name === 'cookie' ? '; ' : ', ';
    headers[name] =
      headers[name] === undefined ? raw[i + 1]! : `${headers[name]}${joiner}${raw[i + 1]}`;
  }
  return { headers, rawHeaders: raw } as unknown as IncomingMessage;
}

t.test('sources are interned, so one source named by two providers is one object', async (t) => {
  const sources = new TokenSources();
  const [a] = sources.of(provider());
  const [b] = sources.of(provider({ fromHeaders: [{ name: 'Authorization', prefix: 'bearer ' }] }));
  t.equal(a, b);
  t.equal(sources.all.length, 1);
  t.same(
    [...sources.of(provider({ fromCookies: ['session'] }))].map((s) => s.label),
    ['the session cookie'],
    'a provider naming only cookies does not read Authorization',
  );
});

t.test(
  'a token is found after its prefix, in any case of the scheme, and only there',
  async (t) => {
    const sources = new TokenSources();
    sources.of(provider());
    sources.of(provider({ fromHeaders: [{ name: 'x-jwt' }], fromCookies: ['session'] }));
    const all = sources.all;
    t.match(findToken(requestWith(['Authorization', 'bearer abc.def.ghi']), all), {
      token: 'abc.def.ghi',
      source: { name: 'authorization' },
    });
    t.equal(findToken(requestWith(['Authorization', 'Basic dXNlcg==']), all), undefined);
    t.match(findToken(requestWith(['X-JWT', ' a.b.c ']), all), { token: 'a.b.c' });
    t.match(findToken(requestWith(['cookie', 'a=1; session="x.y.z"; b=2']), all), {
      token: 'x.y.z',
      source: { kind: 'cookie' },
    });
    t.equal(findToken(requestWith(['cookie', 'mysession=x.y.z']), all), undefined);
    t.equal(findToken(requestWith([]), all), undefined);
  },
);

t.test('two tokens, or a token header sent twice, are an invalid request', async (t) => {
  const sources = new TokenSources();
  sources.of(
    provider({ fromHeaders: [{ name: 'authorization', prefix: 'Bearer ' }, { name: 'x-jwt' }] }),
  );
  sources.of(provider({ fromCookies: ['session'] }));
  const all = sources.all;
  for (const raw of [
    ['authorization', 'Bearer a.b.c', 'x-jwt', 'd.e.f'],
    ['authorization', 'Basic dXNlcg==', 'authorization', 'Bearer a.b.c'],
    ['x-jwt', 'a.b.c', 'X-Jwt', 'a.b.c'],
    ['cookie', 'session=a.b.c; session=d.e.f'],
    ['x-jwt', 'a.b.c', 'cookie', 'session=d.e.f'],
  ]) {
    t.match(findToken(requestWith(raw), all), { error: 'invalid_request' }, raw.join(' '));
  }
});

t.test(
  'what is not a token is refused before any parsing, an oversized one included',
  async (t) => {
    const sources = new TokenSources();
    sources.of(provider());
    const all = sources.all;
    t.match(findToken(requestWith(['authorization', 'Bearer a b']), all), {
      error: 'invalid_token',
      description: /does not hold one token/,
    });
    t.match(
      findToken(requestWith(['authorization', `Bearer ${'a'.repeat(MAX_TOKEN_BYTES + 1)}`]), all),
      {
        error: 'invalid_token',
        description: /longer than/,
      },
    );
  },
);

t.test('a token cookie is taken out of Cookie, and the rest kept in order', async (t) => {
  t.equal(cookiesWithout('a=1; session=x; b=2', 'session'), 'a=1; b=2');
  t.equal(cookiesWithout('session=x', 'session'), undefined);
  t.equal(cookiesWithout('flag; session=x', 'session'), 'flag');
});

t.test('claims become header values only when a header can hold them as they are', async (t) => {
  t.equal(claimHeaderValue('alice'), 'alice');
  t.equal(claimHeaderValue(42), '42');
  t.equal(claimHeaderValue(true), 'true');
  t.equal(claimHeaderValue(['a', 'b']), 'a,b');
  t.equal(claimHeaderValue({ nested: 1 }), undefined);
  t.equal(claimHeaderValue(null), undefined);
  t.equal(claimHeaderValue(''), undefined);
  t.equal(claimHeaderValue('evil\r\nx-injected: 1'), undefined);
  t.equal(claimHeaderValue('José'), undefined);
});
