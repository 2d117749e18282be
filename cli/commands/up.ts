import { resolve } from 'node:path';
import { runUp } from '../up.ts';
import type { Command } from './command.ts';

export const up: Command = {
  name: 'up',
  summary:
    'Starts a local mesh on loopback: control plane, demo services frontend and orders each with a sidecar, dev CA on first run. Ctrl-C stops all.',
  flags: [
    {
      name: 'policies',
      help: 'folder of RoutePolicy YAML',
      default: resolve(import.meta.dirname, '../../demo/policies'),
    },
    { name: 'state', help: 'state folder (CA, tokens, client certificates)', default: '.postern' },
  ],
  run: (values) => runUp({ policiesDir: values.policies!, stateDir: values.state! }),
};
