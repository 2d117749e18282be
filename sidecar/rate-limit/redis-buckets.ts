/**
 * Global rate-limit buckets in Redis, through ioredis: the token bucket of
 * token-bucket.ts as one Lua script, so that a take is one atomic round trip
 * and every replica of a destination spends from the same bucket. Loaded only
 * by a sidecar whose snapshot names a Redis (global-limiter.ts imports it).
 *
 * The client never queues and never retries a command: a rate-limit check
 * that cannot be answered now is worth nothing later, and the caller falls
 * back to its local share instead (DESIGN.md, Rate limits).
 */
import { Redis } from 'ioredis';
import type { CompiledRateLimit } from './limit.ts';
import type { Take } from './token-bucket.ts';

/**
 * takeToken (token-bucket.ts) in Lua. The clock is Redis's own, so replicas
 * whose clocks differ still share one schedule; tests pass ARGV[3] to run
 * the shared scenarios at chosen instants. Fractions travel as strings
 * (a Lua number in a reply is truncated to an integer).
 */
const TAKE_SCRIPT = `
local interval = tonumber(ARGV[1])
local capacity = tonumber(ARGV[2])
local now = tonumber(ARGV[3])
if not now then
  local time = redis.call('TIME')
  now = tonumber(time[1]) * 1000 + tonumber(time[2]) / 1000
end
local rounding = 1e-6
local tat = tonumber(redis.call('GET', KEYS[1]))
if not tat or tat < now then tat = now end
local nextTat = tat + interval
local ahead = nextTat - now
local limit = capacity * interval
if ahead > limit + rounding then
  return {0, 0, tostring(ahead - limit), tostring(tat - now)}
end
redis.call('SET', KEYS[1], string.format('%.6f', nextTat), 'PX', math.max(1, math.ceil(ahead)))
return {1, math.floor((limit - ahead + rounding) / interval), '0', tostring(ahead)}
`;

type TakeReply = [allowed: number, remaining: number, retryAfterMs: string, resetMs: string];

interface ScriptedRedis extends Redis {
  posternTake(
    key: string,
    intervalMs: string,
    capacity: string,
    nowMs?: string,
  ): Promise<TakeReply>;
}

export interface RedisBucketsOptions {
  readonly url: string;
  /** What this mesh's keys start with (the snapshot's rateLimit.keyPrefix; default `postern:`). */
  readonly keyPrefix?: string;
  /** How long a command may take before it counts as failed. */
  readonly commandTimeoutMs: number;
  /** The connection is up and answers (again). */
  onReady(): void;
  /** The connection is gone; or ioredis reports an error (reason). */
  onTrouble(reason: string): void;
}

export class RedisBuckets {
  readonly #redis: ScriptedRedis;
  readonly #prefix: string;

  constructor(options: RedisBucketsOptions) {
    this.#prefix = options.keyPrefix ?? 'postern:';
    const redis = new Redis(options.url, {
      enableOfflineQueue: false,
      maxRetriesPerRequest: 0,
      commandTimeout: options.commandTimeoutMs,
      connectTimeout: 1000,
      // Reconnect soon, then every 2 s at most, for as long as it takes.
      retryStrategy: (attempt) => Math.min(100 * 2 ** Math.min(attempt, 5), 2000),
    });
    redis.defineCommand('posternTake', { numberOfKeys: 1, lua: TAKE_SCRIPT });
    redis.on('ready', () => options.onReady());
    redis.on('close', () => options.onTrouble('the connection to Redis closed'));
    redis.on('error', (error: Error) => options.onTrouble(error.message));
    this.#redis = redis as ScriptedRedis;
  }

  /** Connected and past the ready check: commands are sent, not refused. */
  get ready(): boolean {
    return this.#redis.status === 'ready';
  }

  /** One token from the shared bucket of `key` under `limit`; `nowMs` only in tests (Redis's clock otherwise). */
  async take(limit: CompiledRateLimit, key: string, nowMs?: number): Promise<Take> {
    const reply = await this.#redis.posternTake(
      key ? `${this.#prefix}rl:${limit.id}:${key}` : `${this.#prefix}rl:${limit.id}`,
      String(limit.intervalMs),
      String(limit.capacity),
      ...(nowMs === undefined ? [] : [String(nowMs)]),
    );
    return {
      allowed: reply[0] === 1,
      tat: 0,
      remaining: reply[1],
      retryAfterMs: Number(reply[2]),
      resetMs: Number(reply[3]),
    };
  }

  async ping(): Promise<void> {
    await this.#redis.ping();
  }

  close(): void {
    this.#redis.disconnect();
  }
}
