import t from 'tap';
import { ConfigError } from '../common/errors.ts';
import { parseLimitsFlag } from './limits-flag.ts';

t.test('--limits sets listener and upstream limits by name, in their units', async (t) => {
  t.same(
    parseLimitsFlag(
      'headers-timeout=5s, max-headers=50,max-header-bytes=32Ki,response-timeout=2m,upstream-keepalive-timeout=2s',
    ),
    {
      listener: { headersTimeoutMs: 5_000, maxHeaders: 50, maxHeaderBytes: 32 * 1024 },
      upstream: { responseTimeoutMs: 120_000, keepAliveTimeoutMs: 2_000 },
    },
  );
  t.same(parseLimitsFlag(''), { listener: {}, upstream: {} }, 'none given: the defaults stand');
});

t.test('--limits names every problem at once', async (t) => {
  let error: unknown;
  try {
    parseLimitsFlag('headers-timeout=soon,bogus=1,max-headers=0,connect-timeout');
  } catch (caught) {
    error = caught;
  }
  t.ok(error instanceof ConfigError);
  const message = (error as Error).message;
  t.match(message, /headers-timeout: expected a duration/);
  t.match(message, /"bogus" is not a limit; expected one of handshake-timeout/);
  t.match(message, /max-headers: expected a whole number of at least 1; found "0"/);
  t.match(message, /connect-timeout: expected a duration such as 100ms, 1s, 5m or 24h; found ""/);
});
