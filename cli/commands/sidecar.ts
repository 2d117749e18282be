import { INBOUND_LIMITS } from '../../common/connection-limits.ts';
import { ConfigError } from '../../common/errors.ts';
import { applyDataPlaneV8Settings } from '../../common/v8-settings.ts';
import {
  DEFAULT_UNDERSCORE_ACTION,
  isUnderscoreAction,
  UNDERSCORE_ACTIONS,
  type UnderscoreAction,
} from '../../sidecar/http/headers.ts';
import { countFlag, portFlag, readAll } from '../flags.ts';
import { limitsFlag, parseLimitsFlag } from '../limits-flag.ts';
import { type Command, durationFlag, untilSignalled } from './command.ts';
import { dataPlaneOptions, identityFlags, recordingFlags } from './data-plane-flags.ts';

export const sidecar: Command = {
  name: 'sidecar',
  summary:
    'Runs a sidecar beside one app: mTLS inbound, mTLS-originating outbound, admin endpoints.',
  flags: [
    ...identityFlags,
    { name: 'app-port', help: 'port of the local app', required: true },
    { name: 'app-host', help: 'address of the local app', default: '127.0.0.1' },
    {
      name: 'advertise',
      help: 'host:port peers dial for this workload (default: the inbound address)',
    },
    { name: 'inbound-host', help: 'address the inbound listener binds', default: '0.0.0.0' },
    { name: 'inbound-port', help: 'inbound (mTLS) port', default: '15006' },
    {
      name: 'outbound-port',
      help: "outbound port on 127.0.0.1 (the app's HTTP_PROXY)",
      default: '15001',
    },
    {
      name: 'headers-with-underscores',
      help: `inbound header names with underscores (x_user, which CGI servers read as x-user): ${UNDERSCORE_ACTIONS.join(' | ')}; twins of the sidecar's own headers always go`,
      default: DEFAULT_UNDERSCORE_ACTION,
    },
    {
      name: 'max-inbound-connections',
      help: 'open inbound connections accepted; more are closed on accept, logged and counted',
      default: String(INBOUND_LIMITS.maxConnections),
    },
    limitsFlag,
    ...recordingFlags,
  ],
  async run(values) {
    applyDataPlaneV8Settings();
    // Every flag is read before anything starts, and every problem named at once.
    const read = readAll({
      dataPlane: () => dataPlaneOptions(values),
      underscores: () => underscoresFlag(values['headers-with-underscores']!),
      limits: () => parseLimitsFlag(values.limits!),
      drainMs: () => durationFlag(values, 'drain-timeout'),
      appPort: () => portFlag(values, 'app-port'),
      inboundPort: () => portFlag(values, 'inbound-port'),
      outboundPort: () => portFlag(values, 'outbound-port'),
      maxInbound: () => countFlag(values, 'max-inbound-connections'),
    });
    const { limits, drainMs } = read;
    // Here, not at the top: other commands share this binary and must not load the data plane.
    const { startSidecar } = await import('../../sidecar/sidecar.ts');
    const running = await startSidecar({
      ...read.dataPlane,
      appPort: read.appPort,
      appHost: values['app-host']!,
      ...(values.advertise ? { advertise: values.advertise } : {}),
      inboundHost: values['inbound-host']!,
      inboundPort: read.inboundPort,
      outboundPort: read.outboundPort,
      headersWithUnderscores: read.underscores,
      inboundLimits: { ...limits.listener, maxConnections: read.maxInbound },
      outboundLimits: limits.listener,
      upstreamLimits: limits.upstream,
      ...(limits.memoryLimit === undefined ? {} : { memoryLimit: limits.memoryLimit }),
    });
    return untilSignalled(() => running.shutdown(drainMs));
  },
};

function underscoresFlag(value: string): UnderscoreAction {
  if (isUnderscoreAction(value)) return value;
  throw new ConfigError(
    `--headers-with-underscores must be ${UNDERSCORE_ACTIONS.slice(0, -1).join(', ')} or ${UNDERSCORE_ACTIONS.at(-1)}; found ${JSON.stringify(value)}`,
  );
}
