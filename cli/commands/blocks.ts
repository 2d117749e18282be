import { ConfigError } from '../../common/errors.ts';
import type { BlockEntry } from '../../control-plane/detection/blocks.ts';
import { asOperator, OPERATOR_FLAGS } from '../operator-api.ts';
import type { Command } from './command.ts';

export const blocksList: Command = {
  name: 'blocks list',
  summary:
    'Lists the callers exfiltration alerts blocked on routes whose policy says `exfiltration.action: block` (one JSON line each).',
  flags: [...OPERATOR_FLAGS],
  async run(values) {
    const { blocks } = await asOperator<{ blocks: BlockEntry[] }>(values, 'GET', '/v1/blocks');
    for (const block of blocks) process.stdout.write(`${JSON.stringify(block)}\n`);
    if (!blocks.length) process.stderr.write('no caller is blocked\n');
    return 0;
  },
};

export const blocksClear: Command = {
  name: 'blocks clear',
  summary:
    "Unblocks a caller on a route: the workload's sidecars admit it again with their next snapshot.",
  flags: [
    ...OPERATOR_FLAGS,
    { name: 'principal', help: 'the blocked caller, spiffe://...', required: true },
    { name: 'workload', help: 'namespace/name of the workload it was blocked on', required: true },
    { name: 'route', help: 'the route name', required: true },
  ],
  async run(values) {
    if (!/^[^/]+\/[^/]+$/.test(values.workload!)) {
      throw new ConfigError(
        `--workload must be namespace/name; found ${JSON.stringify(values.workload)}`,
      );
    }
    const query = new URLSearchParams({
      principal: values.principal!,
      workload: values.workload!,
      route: values.route!,
    });
    await asOperator(values, 'DELETE', `/v1/blocks?${query}`);
    process.stdout.write(
      `${values.principal} is no longer blocked on ${values.workload} route ${values.route}\n`,
    );
    return 0;
  },
};
