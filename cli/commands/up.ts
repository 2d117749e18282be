import { resolve } from 'node:path';
import { ConfigError } from '../../common/errors.ts';
import { CHECKOUT } from '../postern-bin.ts';
import type { TracesMode } from '../up.ts';
import type { Command } from './command.ts';

/** --traces: off, print, or the OTLP/HTTP base URL of a collector (Jaeger: http://localhost:4318). */
function tracesMode(value: string): TracesMode {
  if (value === 'off' || value === 'print') return { kind: value };
  let url: URL;
  try {
    url = new URL(value);
  } catch {
    throw new ConfigError(
      `--traces must be off, print or an http(s) URL of an OTLP/HTTP endpoint; found ${JSON.stringify(value)}`,
    );
  }
  if (url.protocol !== 'http:' && url.protocol !== 'https:') {
    throw new ConfigError(
      `--traces: an OTLP/HTTP endpoint is http or https; found ${url.protocol}`,
    );
  }
  return { kind: 'otlp', endpoint: value };
}

function onOff(name: string, value: string): boolean {
  if (value !== 'on' && value !== 'off')
    throw new ConfigError(`--${name} must be on or off; found ${JSON.stringify(value)}`);
  return value === 'on';
}

export const up: Command = {
  name: 'up',
  summary:
    'Starts a local mesh on loopback: control plane, demo services frontend and orders each with a sidecar, dev CA on first run. Ctrl-C stops all.',
  flags: [
    {
      name: 'policies',
      help: 'folder of RoutePolicy YAML',
      default: resolve(CHECKOUT, 'demo/policies'),
    },
    { name: 'state', help: 'state folder (CA, tokens, client certificates)', default: '.postern' },
    {
      name: 'traces',
      help: "off | print (each request's trace printed here) | an OTLP/HTTP endpoint such as http://localhost:4318 (Jaeger, an OTel collector)",
      default: 'off',
    },
    {
      name: 'access-log',
      help: "on | off: each sidecar's access log in STATE/logs/<workload>-access.log",
      default: 'on',
    },
  ],
  // Loaded when run: every role shares this binary, and the sidecar must not carry the CA (issue 7).
  run: async (values) => {
    const traces = tracesMode(values.traces!);
    const accessLog = onOff('access-log', values['access-log']!);
    return (await import('../up.ts')).runUp({
      policiesDir: values.policies!,
      stateDir: values.state!,
      traces,
      accessLog,
    });
  },
};
