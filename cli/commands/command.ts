import { ConfigError } from '../../common/errors.ts';
import { parseBytes, parseDuration } from '../../common/units.ts';
import type { CommandSpec } from '../flags.ts';

/** One `postern` command: its flags (cli/flags.ts) and what it does. */
export interface Command extends CommandSpec {
  /** Runs the command; resolves with the exit code (long-running commands resolve when stopped). */
  run(
    values: Readonly<Record<string, string | undefined>>,
    positional: readonly string[],
  ): Promise<number>;
}

/** Runs until SIGINT/SIGTERM, then calls `stop`. */
export function untilSignalled(stop: () => Promise<void>): Promise<number> {
  return new Promise((resolveExit) => {
    const handler = () => {
      process.off('SIGINT', handler);
      process.off('SIGTERM', handler);
      stop().then(
        () => resolveExit(0),
        () => resolveExit(1),
      );
    };
    process.on('SIGINT', handler);
    process.on('SIGTERM', handler);
  });
}

export const durationFlag = (
  values: Readonly<Record<string, string | undefined>>,
  name: string,
): number => {
  try {
    return parseDuration(values[name]!);
  } catch (error) {
    throw new ConfigError(`--${name}: ${(error as Error).message}`);
  }
};

export const bytesFlag = (values: Readonly<Record<string, string | undefined>>, name: string) => {
  try {
    return parseBytes(values[name]!);
  } catch (error) {
    throw new ConfigError(`--${name}: ${(error as Error).message}`);
  }
};
