/**
 * API-key consumers as the gateway checks them: a name and the SHA-256 of
 * its key, never the key itself (api-key-file.ts reads them). A presented
 * key is hashed once and compared with every consumer's hash in constant
 * time (no early exit), so response timing says nothing about how close a
 * guess came.
 */
import { createHash, timingSafeEqual } from 'node:crypto';

export interface Consumer {
  readonly name: string;
  readonly hash: Buffer;
}

/** The SHA-256 of a key as consumers list it: `printf %s "$KEY" | sha256sum`. */
export function hashApiKey(key: string): string {
  return createHash('sha256').update(key).digest('hex');
}

/** The consumer whose key this is, or undefined; every consumer compared, whichever matches. */
export function consumerOfKey(consumers: readonly Consumer[], key: string): string | undefined {
  const presented = createHash('sha256').update(key).digest();
  let found: string | undefined;
  for (const candidate of consumers) {
    if (timingSafeEqual(presented, candidate.hash) && found === undefined) found = candidate.name;
  }
  return found;
}
