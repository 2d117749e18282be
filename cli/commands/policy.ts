import { ConfigError } from '../../common/errors.ts';
import type { Command } from './command.ts';

export const policyValidate: Command = {
  name: 'policy validate',
  summary:
    'Checks RoutePolicy and HTTPRoute files; prints every error (file, resource, JSON path) and warning; exits 1 on any error.',
  flags: [],
  positional: 'FILE|DIR...',
  async run(_values, positional) {
    if (!positional.length)
      throw new ConfigError('postern policy validate: name at least one file or folder');
    // Loaded here, not at the top: every role shares this binary, and only this command needs YAML.
    const { loadPolicies } = await import('../../common/policy/files.ts');
    const loaded = await loadPolicies(positional);
    for (const warning of loaded.warnings) process.stdout.write(`warning: ${warning}\n`);
    for (const error of loaded.errors) process.stdout.write(`error: ${error}\n`);
    process.stdout.write(
      `${loaded.policies.length} valid RoutePolicy resource(s), ${loaded.httpRoutes.length} valid HTTPRoute resource(s), ${loaded.errors.length} error(s), ${loaded.warnings.length} warning(s)\n`,
    );
    return loaded.errors.length ? 1 : 0;
  },
};
