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

t.test('--limits takes connection caps and a memory limit for the overload guard', async (t) => {
  t.same(parseLimitsFlag('max-connections=200,upstream-max-connections=16,memory-limit=256Mi'), {
    listener: { maxConnections: 200 },
    upstream: { maxConnections: 16 },
    memoryLimit: 256 * 2 ** 20,
  });
});

t.test(
  'regression: --limits refuses at start-up what Node would refuse only once a listener is built',
  async (t) => {
    // Before, request-timeout=1s passed here and Node threw ERR_OUT_OF_RANGE
    // when the listener was built, after the certificate arrived: with the
    // control plane down, never, and the mistake went unreported.
    t.throws(() => parseLimitsFlag('request-timeout=1s'), {
      message: /headers-timeout \(10s\) is longer than request-timeout \(1s\)/,
    });
    t.throws(() => parseLimitsFlag('headers-timeout=400s'), {
      message: /headers-timeout \(400s\) is longer than request-timeout \(300s\)/,
    });
    t.throws(() => parseLimitsFlag('idle-timeout=600h,memory-limit=lots'), {
      message: /memory-limit: expected a size.*idle-timeout: at most 2147483647ms/,
    });
    t.same(parseLimitsFlag('headers-timeout=2s,request-timeout=2s').listener, {
      headersTimeoutMs: 2_000,
      requestTimeoutMs: 2_000,
    });
  },
);
