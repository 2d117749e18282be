/**
 * Which bucket a request draws from: a pure function of the limit's key kind
 * and what the sidecar verified about the caller (its certificate, its token,
 * its socket). Nothing a client can write in a header gets here.
 */
import type { RateLimitKey } from './limit.ts';

export interface CallerFacts {
  /** SPIFFE ID from the verified peer certificate. */
  readonly principal: string | undefined;
  /** Claims of the verified JWT. */
  readonly claims: Readonly<Record<string, unknown>> | undefined;
  /** The socket's peer address (IPv4-mapped IPv6 already unwrapped). */
  readonly sourceAddress: string | undefined;
  /** The API-key consumer (`postern gateway`). */
  readonly consumer?: string | undefined;
}

/**
 * The bucket callers share when they lack what the key names (no token for
 * `subject`, no certificate for `principal` under PERMISSIVE): they are
 * limited together rather than not at all. No real key can collide with it:
 * every real one is non-empty.
 */
export const WITHOUT_KEY = '';

function claimText(value: unknown): string {
  if (typeof value === 'string') return value;
  if (typeof value === 'number' && Number.isFinite(value)) return String(value);
  // An object or a list is no identity to count by.
  return WITHOUT_KEY;
}

/** The bucket key of this request under `key`. */
export function bucketKey(key: RateLimitKey, facts: CallerFacts): string {
  switch (key.kind) {
    case 'principal':
      return facts.principal ?? WITHOUT_KEY;
    case 'subject':
      return facts.claims ? claimText(facts.claims.sub) : WITHOUT_KEY;
    case 'claim':
      return facts.claims ? claimText(facts.claims[key.claim]) : WITHOUT_KEY;
    case 'source-ip':
      return facts.sourceAddress ? sourceNetwork(facts.sourceAddress) : WITHOUT_KEY;
    case 'consumer':
      return facts.consumer ?? WITHOUT_KEY;
    case 'route':
      return WITHOUT_KEY;
  }
}

/**
 * An IPv4 address as it is; an IPv6 address as its /64, the smallest network
 * a host is usually given: one host can use every address of its /64, so
 * counting by address would give it 2^64 buckets.
 */
export function sourceNetwork(address: string): string {
  if (!address.includes(':')) return address;
  const groups = expandIpv6(address);
  return groups ? `${groups.slice(0, 4).join(':')}::/64` : address;
}

/** The eight groups of an IPv6 address, without leading zeros; undefined if it is not one. */
function expandIpv6(address: string): string[] | undefined {
  const zone = address.indexOf('%');
  const bare = zone === -1 ? address : address.slice(0, zone);
  const halves = bare.split('::');
  if (halves.length > 2) return undefined;
  const head = halves[0] ? halves[0].split(':') : [];
  const tail = halves.length === 2 && halves[1] ? halves[1].split(':') : [];
  // An embedded IPv4 tail (::ffff:1.2.3.4 forms) takes two groups.
  const last = tail.length ? tail : head;
  if (last.length && last[last.length - 1]!.includes('.')) {
    const octets = last.pop()!.split('.').map(Number);
    last.push(
      ((octets[0]! << 8) | octets[1]!).toString(16),
      ((octets[2]! << 8) | octets[3]!).toString(16),
    );
  }
  const missing = 8 - head.length - tail.length;
  if (halves.length === 1 ? missing !== 0 : missing < 1) return undefined;
  const groups = [...head, ...Array<string>(halves.length === 2 ? missing : 0).fill('0'), ...tail];
  return groups.map((group) => Number.parseInt(group || '0', 16).toString(16));
}
