import { resolve } from 'node:path';
import { CHECKOUT } from '../postern-bin.ts';
import type { Command } from './command.ts';

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
  ],
  // Loaded when run: every role shares this binary, and the sidecar must not carry the CA (issue 7).
  run: async (values) =>
    (await import('../up.ts')).runUp({ policiesDir: values.policies!, stateDir: values.state! }),
};
