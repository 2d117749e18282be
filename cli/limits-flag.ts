/**
 * `--limits name=value,...`: the listener and upstream limits of a
 * data-plane role (common/connection-limits.ts has what each means and its
 * default). Every problem is reported at once.
 */
import {
  type ConnectionLimits,
  INBOUND_LIMITS,
  UPSTREAM_LIMITS,
  type UpstreamLimits,
} from '../common/connection-limits.ts';
import { ConfigError } from '../common/errors.ts';
import { parseBytes, parseDuration } from '../common/units.ts';
import type { FlagSpec } from './flags.ts';

type Kind = 'duration' | 'count' | 'bytes';

const LISTENER: Record<string, readonly [keyof ConnectionLimits, Kind]> = {
  'handshake-timeout': ['handshakeTimeoutMs', 'duration'],
  'headers-timeout': ['headersTimeoutMs', 'duration'],
  'request-timeout': ['requestTimeoutMs', 'duration'],
  'idle-timeout': ['idleTimeoutMs', 'duration'],
  'stream-idle-timeout': ['streamIdleTimeoutMs', 'duration'],
  'max-headers': ['maxHeaders', 'count'],
  'max-header-bytes': ['maxHeaderBytes', 'bytes'],
  'max-connections': ['maxConnections', 'count'],
};

const UPSTREAM: Record<string, readonly [keyof UpstreamLimits, Kind]> = {
  'connect-timeout': ['connectTimeoutMs', 'duration'],
  'response-timeout': ['responseTimeoutMs', 'duration'],
  'upstream-idle-timeout': ['streamIdleTimeoutMs', 'duration'],
  'upstream-keepalive-timeout': ['keepAliveTimeoutMs', 'duration'],
  'upstream-max-connections': ['maxConnections', 'count'],
};

const shown = (ms: number) => (ms % 1000 === 0 ? `${ms / 1000}s` : `${ms}ms`);

/** The flag, with every name and its default in its help. */
export const limitsFlag: FlagSpec = {
  name: 'limits',
  help: `name=value,... to change what clients may hold and how long upstreams may take: ${[
    ...Object.entries(LISTENER).map(([name, [key, kind]]) => {
      const value = INBOUND_LIMITS[key];
      return `${name} (${kind === 'duration' ? shown(value) : value})`;
    }),
    ...Object.entries(UPSTREAM).map(([name, [key, kind]]) => {
      const value = UPSTREAM_LIMITS[key];
      return `${name} (${kind === 'duration' ? shown(value) : value})`;
    }),
    "memory-limit (the container's): past 90% of it new requests are shed with 503",
  ].join(
    ', ',
  )}; a listener's own connection flag (--max-inbound-connections, --max-connections) wins over max-connections`,
  default: '',
};

function parseValue(kind: Kind, text: string): number {
  if (kind === 'duration') return parseDuration(text);
  if (kind === 'bytes') return parseBytes(text);
  if (!/^[1-9][0-9]*$/.test(text))
    throw new Error(`expected a whole number of at least 1; found ${JSON.stringify(text)}`);
  return Number(text);
}

export interface ParsedLimits {
  readonly listener: Partial<ConnectionLimits>;
  readonly upstream: Partial<UpstreamLimits>;
  /** Bytes the process may hold before it sheds (absent: the container's limit). */
  readonly memoryLimit?: number;
}

/** The longest timer Node keeps (setTimeout's limit, about 24.8 days). */
const MAX_TIMER_MS = 2 ** 31 - 1;

/**
 * What Node would refuse only once a listener is built (after the
 * certificate is fetched, which may never happen if the control plane is
 * down): checked here, with the other problems.
 */
function rangeProblems(
  listener: Partial<ConnectionLimits>,
  upstream: Partial<UpstreamLimits>,
): string[] {
  const problems: string[] = [];
  for (const [name, [key, kind]] of Object.entries(LISTENER))
    if (kind === 'duration' && (listener[key] ?? 0) > MAX_TIMER_MS)
      problems.push(`${name}: at most ${MAX_TIMER_MS}ms`);
  for (const [name, [key, kind]] of Object.entries(UPSTREAM))
    if (kind === 'duration' && (upstream[key] ?? 0) > MAX_TIMER_MS)
      problems.push(`${name}: at most ${MAX_TIMER_MS}ms`);
  const headers = listener.headersTimeoutMs ?? INBOUND_LIMITS.headersTimeoutMs;
  const request = listener.requestTimeoutMs ?? INBOUND_LIMITS.requestTimeoutMs;
  if (headers > request)
    problems.push(
      `headers-timeout (${shown(headers)}) is longer than request-timeout (${shown(request)}); the headers are part of the request`,
    );
  return problems;
}

/** Parses `--limits`; throws one ConfigError naming every problem. */
export function parseLimitsFlag(text: string): ParsedLimits {
  const listener: Partial<Record<keyof ConnectionLimits, number>> = {};
  const upstream: Partial<Record<keyof UpstreamLimits, number>> = {};
  const problems: string[] = [];
  let memoryLimit: number | undefined;
  for (const item of text
    .split(',')
    .map((part) => part.trim())
    .filter(Boolean)) {
    const equals = item.indexOf('=');
    const name = equals === -1 ? item : item.slice(0, equals);
    const value = equals === -1 ? '' : item.slice(equals + 1);
    if (name === 'memory-limit') {
      try {
        memoryLimit = parseBytes(value);
      } catch (error) {
        problems.push(`${name}: ${(error as Error).message}`);
      }
      continue;
    }
    const known = LISTENER[name] ?? UPSTREAM[name];
    if (!known) {
      problems.push(
        `${JSON.stringify(name)} is not a limit; expected one of ${[...Object.keys(LISTENER), ...Object.keys(UPSTREAM), 'memory-limit'].join(', ')}`,
      );
      continue;
    }
    try {
      const parsed = parseValue(known[1], value);
      if (name in LISTENER) listener[known[0] as keyof ConnectionLimits] = parsed;
      else upstream[known[0] as keyof UpstreamLimits] = parsed;
    } catch (error) {
      problems.push(`${name}: ${(error as Error).message}`);
    }
  }
  problems.push(...rangeProblems(listener, upstream));
  if (problems.length) throw new ConfigError(`--limits: ${problems.join('; ')}`);
  return { listener, upstream, ...(memoryLimit === undefined ? {} : { memoryLimit }) };
}
