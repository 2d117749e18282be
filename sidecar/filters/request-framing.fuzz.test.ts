/** Property-based fuzzing of the request-framing filter (fast-check; runs: test/fuzz/runs.ts). */
import type { IncomingMessage } from 'node:http';
import fc from 'fast-check';
import t from 'tap';
import { fuzzParameters } from '../../test/fuzz/runs.ts';
import type { LocalReply } from '../http/local-reply.ts';
import type { Exchange } from './filter.ts';
import { requestFraming } from './request-framing.ts';

const MAX_HEADERS = 10;

/** Host values an attacker would try beside sound ones. */
const hostValue = fc.oneof(
  fc.constantFrom('orders', 'orders:8080', '10.0.0.1', '[::1]:80', 'a, b', 'a b', 'a/b', 'a@b', ''),
  fc.stringMatching(/^[\x21-\x7e][\x20-\x7e]{0,30}$/),
);
const codingValue = fc.oneof(
  fc.constantFrom(
    'chunked',
    'CHUNKED',
    'gzip, chunked',
    'chunked, identity',
    'xchunked',
    ' chunked',
  ),
  fc.stringMatching(/^[\x21-\x7e]{1,12}$/),
);
const line = fc.oneof(
  fc.tuple(fc.constantFrom('Host', 'host', 'HOST'), hostValue),
  fc.tuple(fc.constantFrom('Transfer-Encoding', 'transfer-encoding'), codingValue),
  fc.tuple(fc.stringMatching(/^X-[A-Za-z0-9-]{1,10}$/), fc.string({ maxLength: 8 })),
);

/** The request as Node's parser hands it over: raw lines, and the joined or first-wins lowercase map. */
function requestOf(lines: [string, string][], minor: 0 | 1): IncomingMessage {
  const headers: Record<string, string> = {};
  for (const [name, value] of lines) {
    const lower = name.toLowerCase();
    if (lower === 'host') headers.host ??= value;
    else headers[lower] = headers[lower] === undefined ? value : `${headers[lower]}, ${value}`;
  }
  return {
    rawHeaders: lines.flat(),
    headers,
    httpVersionMinor: minor,
  } as unknown as IncomingMessage;
}

t.test(
  'a request the framing filter lets through has one sound Host (or none on HTTP/1.0), at most the allowed header lines, and no transfer coding but chunked on HTTP/1.1',
  async () => {
    const filter = requestFraming(MAX_HEADERS);
    fc.assert(
      fc.property(
        fc.array(line, { maxLength: 14 }),
        fc.constantFrom<0 | 1>(0, 1),
        (lines, minor) => {
          const reply = filter.onRequest({ req: requestOf(lines, minor) } as Exchange) as
            | LocalReply
            | undefined;
          // Refusing is always safe here; that sound requests pass is the next test's.
          if (reply) return reply.close === true && [400, 431, 501].includes(reply.status);
          const hosts = lines.filter(([name]) => name.toLowerCase() === 'host');
          const codings = lines.filter(([name]) => name.toLowerCase() === 'transfer-encoding');
          const soundHost =
            hosts.length === 1
              ? !/[\s,/@?#]/.test(hosts[0]![1]) && hosts[0]![1].length > 0
              : hosts.length === 0 && minor === 0;
          const soundCoding =
            codings.length === 0 ||
            (minor === 1 && codings.length === 1 && codings[0]![1].toLowerCase() === 'chunked');
          return lines.length <= MAX_HEADERS && soundHost && soundCoding;
        },
      ),
      fuzzParameters,
    );
  },
);

t.test('a soundly framed request is always let through, whatever else it carries', async () => {
  const filter = requestFraming(MAX_HEADERS);
  const soundHost = fc.constantFrom(
    'orders',
    'orders:8080',
    'orders.shop.svc.cluster.local',
    '10.0.0.1:80',
    '[::1]:8443',
    'a_b.example.',
  );
  const other = fc.tuple(fc.stringMatching(/^X-[A-Za-z0-9-]{1,10}$/), fc.string({ maxLength: 8 }));
  fc.assert(
    fc.property(
      soundHost,
      fc.array(other, { maxLength: MAX_HEADERS - 2 }),
      fc.boolean(),
      fc.nat(MAX_HEADERS),
      (host, others, chunked, at) => {
        const lines: [string, string][] = [...others];
        if (chunked) lines.push(['Transfer-Encoding', 'chunked']);
        lines.splice(at % (lines.length + 1), 0, ['Host', host]);
        return filter.onRequest({ req: requestOf(lines, 1) } as Exchange) === undefined;
      },
    ),
    fuzzParameters,
  );
});
