#!/usr/bin/env -S node --disable-warning=DEP0060
// The one `postern` binary. Node 24 runs this TypeScript directly (type
// stripping); `npm install` brings that Node into node_modules/.bin.
import { COMMANDS } from '../cli/commands/index.ts';
import { parseFlags, usage } from '../cli/flags.ts';
import { PosternError } from '../common/errors.ts';

function overview(): string {
  return [
    'usage: postern <command> [flags]',
    '',
    'Commands:',
    ...COMMANDS.map((c) => `  ${c.name.padEnd(16)} ${c.summary}`),
    '',
    'Run postern <command> --help for its flags.',
  ].join('\n');
}

async function main(argv: string[]): Promise<number> {
  // Commands are one or two words ("up", "certs init"); the longest match wins.
  const command = COMMANDS.find((c) => c.name.split(' ').every((word, i) => argv[i] === word));
  if (!command) {
    const wanted = argv
      .filter((a) => !a.startsWith('-'))
      .slice(0, 2)
      .join(' ');
    const asked =
      argv.length === 0 || argv[0] === '--help' || argv[0] === '-h' || argv[0] === 'help';
    // Asked-for help is output (stdout, pipeable); a usage error goes to stderr.
    if (asked) process.stdout.write(`${overview()}\n`);
    else
      process.stderr.write(`postern: unknown command ${JSON.stringify(wanted)}\n\n${overview()}\n`);
    return asked ? 0 : 2;
  }
  const parsed = parseFlags(command, argv.slice(command.name.split(' ').length));
  if (parsed.help) {
    process.stdout.write(`${usage(command)}\n`);
    return 0;
  }
  return command.run(parsed.values, parsed.positional);
}

main(process.argv.slice(2)).then(
  (code) => {
    process.exitCode = code;
  },
  (error: unknown) => {
    if (error instanceof PosternError) {
      process.stderr.write(`postern: ${error.message}\n`);
      process.exitCode = 2;
    } else {
      process.stderr.write(`postern: ${(error as Error).stack ?? error}\n`);
      process.exitCode = 1;
    }
  },
);
