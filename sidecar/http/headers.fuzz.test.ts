/** Property-based fuzzing of request header handling (fast-check; runs: test/fuzz/runs.ts). */
import fc from 'fast-check';
import t from 'tap';
import { isHopByHop, roleOf } from '../../common/header-roles.ts';
import { fuzzParameters } from '../../test/fuzz/runs.ts';
import {
  clientAddressOf,
  OUTBOUND_HEADER_RULES,
  type RequestHeaderRules,
  upstreamRequestHeaders,
} from './headers.ts';

/** Header names an attacker would try, in any case, beside ordinary ones. */
const name = fc
  .oneof(
    fc.constantFrom(
      'Host',
      'Connection',
      'Keep-Alive',
      'Transfer-Encoding',
      'TE',
      'Trailer',
      'Upgrade',
      'Proxy-Connection',
      'X-Forwarded-For',
      'Forwarded',
      'X-Real-IP',
      'X-Forwarded-Proto',
      'X-Forwarded-Client-Cert',
      'X-Postern-Principal',
      'x_postern_principal',
      'X_Forwarded_For',
      'Content-Length',
      'Authorization',
      'X-Tenant',
      'x_tenant',
      'traceparent',
    ),
    fc.stringMatching(/^[A-Za-z][A-Za-z0-9_-]{0,15}$/),
  )
  // Drawn by fast-check, not Math.random(), so that FUZZ_SEED replays a failure.
  .chain((n) => fc.constantFrom(n, n.toUpperCase()));
const value = fc.stringMatching(/^[\x21-\x7e][\x20-\x7e]{0,20}$/);
const rawHeaders = fc.array(fc.tuple(name, value), { maxLength: 16 }).map((pairs) => pairs.flat());
const INBOUND: RequestHeaderRules = { underscores: 'drop' };

t.test(
  'inbound: no hop-by-hop, Connection-named or sidecar-owned header from the client goes upstream; one client-address set, the sidecar’s',
  async (t) => {
    fc.assert(
      fc.property(rawHeaders, fc.option(value, { nil: undefined }), (raw, connection) => {
        const client = clientAddressOf('10.1.2.3', 'https');
        const out = upstreamRequestHeaders(raw, connection, INBOUND, client, [
          'x-postern-principal',
          'spiffe://me',
        ]);
        const names = out.filter((_, i) => i % 2 === 0).map((n) => n.toLowerCase());
        const named = new Set((connection ?? '').split(',').map((n) => n.trim().toLowerCase()));
        const owned = names.filter((n) => n.startsWith('x-postern-'));
        return (
          !names.some((n) => isHopByHop(n)) &&
          !names.some((n) => named.has(n) && n !== 'close' && n !== 'keep-alive') &&
          !names.some((n) => n.includes('_')) &&
          owned.length === 1 &&
          out.at(-1) === 'spiffe://me' &&
          names.filter((n) => n === 'x-real-ip').length === 1 &&
          names.filter((n) => n === 'x-forwarded-proto').length === 1 &&
          out[out.indexOf('x-real-ip') + 1] === '10.1.2.3' &&
          out[out.indexOf('x-forwarded-for') + 1]!.endsWith('10.1.2.3')
        );
      }),
      fuzzParameters,
    );
    t.pass();
  },
);

t.test(
  'outbound: the app’s headers pass but hop-by-hop and sidecar-owned ones never do',
  async (t) => {
    fc.assert(
      fc.property(rawHeaders, (raw) => {
        const out = upstreamRequestHeaders(raw, undefined, OUTBOUND_HEADER_RULES, undefined, []);
        const names = out.filter((_, i) => i % 2 === 0).map((n) => n.toLowerCase());
        const kept = raw
          .filter((_, i) => i % 2 === 0)
          .filter((n) => {
            const lower = n.toLowerCase();
            const role = roleOf(lower);
            return !isHopByHop(lower) && (role === undefined || role === 'client-address');
          });
        return (
          !names.some((n) => isHopByHop(n) || roleOf(n) === 'sidecar') &&
          names.length <= kept.length
        );
      }),
      fuzzParameters,
    );
    t.pass();
  },
);
