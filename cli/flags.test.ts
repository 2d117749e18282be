import t from 'tap';
import { type CommandSpec, envName, parseFlags } from './flags.ts';

const SPEC: CommandSpec = {
  name: 'sidecar',
  summary: 'test',
  flags: [
    { name: 'app-port', help: 'port', required: true },
    { name: 'admin-port', help: 'port', default: '15000' },
  ],
};

t.test('every flag has a POSTERN_* environment twin', async (t) => {
  t.equal(envName('bootstrap-token-file'), 'POSTERN_BOOTSTRAP_TOKEN_FILE');
});

t.test('a flag beats its environment variable, which beats the default', async (t) => {
  t.same(parseFlags(SPEC, ['--app-port', '1'], { POSTERN_APP_PORT: '2' }).values, {
    'app-port': '1',
    'admin-port': '15000',
  });
  t.same(parseFlags(SPEC, [], { POSTERN_APP_PORT: '2', POSTERN_ADMIN_PORT: '3' }).values, {
    'app-port': '2',
    'admin-port': '3',
  });
  t.same(parseFlags(SPEC, ['--app-port=4'], {}).values['app-port'], '4');
});

t.test('unknown flags, missing values and missing required flags are named', async (t) => {
  t.throws(() => parseFlags(SPEC, ['--app-prot', '1'], {}), {
    code: 'POSTERN_CONFIG',
    message: /unknown flag --app-prot/,
  });
  t.throws(() => parseFlags(SPEC, ['--app-port'], {}), { message: /--app-port needs a value/ });
  t.throws(() => parseFlags(SPEC, [], {}), {
    message: /missing --app-port \(or POSTERN_APP_PORT\)/,
  });
  t.throws(() => parseFlags(SPEC, ['stray'], { POSTERN_APP_PORT: '1' }), {
    message: /unexpected argument "stray"/,
  });
});

t.test('--help is recognised anywhere', async (t) => {
  t.equal(parseFlags(SPEC, ['--app-port', '1', '--help'], {}).help, true);
});
