import { ConfigError } from '../common/errors.ts';

export interface FlagSpec {
  readonly name: string;
  readonly help: string;
  readonly required?: boolean;
  readonly default?: string;
  /** A one-letter alias (`-f` for --file), as kubectl's users type it. */
  readonly short?: string;
}

export interface CommandSpec {
  /** e.g. "certs issue" */
  readonly name: string;
  readonly summary: string;
  readonly flags: readonly FlagSpec[];
  /** Name of the positional arguments, when the command takes them (e.g. FILE|DIR...). */
  readonly positional?: string;
}

/** Every flag has a POSTERN_* environment twin: --app-port is POSTERN_APP_PORT. */
export function envName(flag: string): string {
  return `POSTERN_${flag.toUpperCase().replace(/-/g, '_')}`;
}

export function usage(spec: CommandSpec): string {
  const lines = [
    `postern ${spec.name}${spec.positional ? ` ${spec.positional}` : ''}`,
    '',
    spec.summary,
    '',
  ];
  if (spec.flags.length)
    lines.push('Flags (each also read from its POSTERN_* environment variable):');
  for (const flag of spec.flags) {
    const note = flag.required
      ? ' (required)'
      : flag.default !== undefined
        ? ` (default ${flag.default})`
        : '';
    const names = `${flag.short ? `-${flag.short}, ` : ''}--${flag.name}`;
    lines.push(`  ${names.padEnd(24)} ${flag.help}${note}  [${envName(flag.name)}]`);
  }
  return lines.join('\n');
}

export interface ParsedFlags {
  readonly values: Readonly<Record<string, string | undefined>>;
  readonly positional: readonly string[];
  readonly help: boolean;
}

/** Parses `--name value` and `--name=value`; flag beats environment beats default; unknown or missing flags throw ConfigError. */
export function parseFlags(
  spec: CommandSpec,
  argv: readonly string[],
  env: NodeJS.ProcessEnv = process.env,
): ParsedFlags {
  const known = new Map(spec.flags.map((flag) => [flag.name, flag]));
  const shorts = new Map(
    spec.flags.flatMap((flag) => (flag.short ? [[flag.short, flag.name]] : [])),
  );
  const given: Record<string, string> = {};
  const positional: string[] = [];
  const problems: string[] = [];
  for (let i = 0; i < argv.length; i++) {
    const arg = argv[i]!;
    if (arg === '--help' || arg === '-h') return { values: {}, positional: [], help: true };
    const short = /^-([a-zA-Z])$/.exec(arg)?.[1];
    if (short !== undefined) {
      const name = shorts.get(short);
      const value = argv[++i];
      if (!name) problems.push(`unknown flag -${short} (see --help)`);
      else if (value === undefined) problems.push(`-${short} needs a value`);
      else given[name] = value;
      continue;
    }
    if (!arg.startsWith('--')) {
      if (!spec.positional) problems.push(`unexpected argument ${JSON.stringify(arg)}`);
      else positional.push(arg);
      continue;
    }
    const eq = arg.indexOf('=');
    const name = eq === -1 ? arg.slice(2) : arg.slice(2, eq);
    if (!known.has(name)) {
      problems.push(`unknown flag --${name} (see --help)`);
      // Its value, if it has one, is not read as a flag or an argument of its own.
      if (eq === -1 && argv[i + 1] !== undefined && !argv[i + 1]!.startsWith('--')) i++;
      continue;
    }
    const value = eq === -1 ? argv[++i] : arg.slice(eq + 1);
    if (value === undefined) problems.push(`--${name} needs a value`);
    else given[name] = value;
  }
  const values: Record<string, string | undefined> = {};
  const missing: string[] = [];
  for (const flag of spec.flags) {
    const value = given[flag.name] ?? env[envName(flag.name)] ?? flag.default;
    if (value === undefined && flag.required)
      missing.push(`--${flag.name} (or ${envName(flag.name)})`);
    values[flag.name] = value;
  }
  if (missing.length) problems.push(`missing ${missing.join(', ')}`);
  // Every problem at once, each on its own line.
  if (problems.length)
    throw new ConfigError(problems.map((problem) => `postern ${spec.name}: ${problem}`).join('\n'));
  return { values, positional, help: false };
}

export function portFlag(
  values: Readonly<Record<string, string | undefined>>,
  name: string,
): number {
  const text = values[name] ?? '';
  const port = Number(text);
  if (!/^\d+$/.test(text) || port > 65535)
    throw new ConfigError(`--${name} must be a port number 0-65535; found ${JSON.stringify(text)}`);
  return port;
}

/** A whole number of at least 1 (a count, a cap). */
export function countFlag(
  values: Readonly<Record<string, string | undefined>>,
  name: string,
): number {
  const text = values[name] ?? '';
  const count = Number(text);
  if (!/^\d+$/.test(text) || count < 1 || !Number.isSafeInteger(count))
    throw new ConfigError(
      `--${name} must be a whole number of at least 1; found ${JSON.stringify(text)}`,
    );
  return count;
}

/**
 * Runs every reader and returns their values, or throws one ConfigError
 * naming every problem: a command's configuration errors are reported all
 * at once, not one per start.
 */
export function readAll<T extends Record<string, () => unknown>>(
  readers: T,
): { [K in keyof T]: ReturnType<T[K]> } {
  const values: Record<string, unknown> = {};
  const problems: string[] = [];
  for (const [key, read] of Object.entries(readers)) {
    try {
      values[key] = read();
    } catch (error) {
      if (!(error instanceof ConfigError)) throw error;
      problems.push(...error.message.split('\n'));
    }
  }
  if (problems.length) throw new ConfigError(problems.join('\n'));
  return values as { [K in keyof T]: ReturnType<T[K]> };
}
