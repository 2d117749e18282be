/**
 * Which endpoint of a service a request goes to, and which endpoints are
 * kept out for a while:
 *
 * - Least loaded of two random choices (Linkerd's and Envoy's default
 *   idea): two endpoints drawn at random, the one with fewer requests in
 *   flight wins. A slow endpoint holds its requests longer, so it is drawn
 *   as often but wins less, without any endpoint knowing all the others'
 *   latency.
 * - Outlier ejection (Envoy's consecutive 5xx / gateway failure): an
 *   endpoint whose last CONSECUTIVE_FAILURES requests failed (could not
 *   connect, or answered 502, 503 or 504) is ejected for EJECTION_BASE_MS
 *   times the number of times it has been ejected (capped at
 *   EJECTION_MAX_MS), then takes traffic again: its next requests are the
 *   probe, and one success forgets a failure streak. Never more than
 *   MAX_EJECTED_SHARE of a service's endpoints are out at once, and never
 *   all: with every endpoint failing, ejecting would only turn errors into
 *   "no endpoint".
 *
 * State is per endpoint (address and identity) and outlives snapshots, so
 * a registry push does not forgive an endpoint that keeps failing.
 */
import type { Endpoint } from './service-directory.ts';

export const CONSECUTIVE_FAILURES = 5;
export const EJECTION_BASE_MS = 30_000;
export const EJECTION_MAX_MS = 300_000;
export const MAX_EJECTED_SHARE = 0.5;

export interface EndpointState {
  inFlight: number;
  consecutiveFailures: number;
  /** How many times it has been ejected: each ejection lasts longer. */
  ejections: number;
  ejectedUntilMs: number;
  requests: number;
  failures: number;
}

export const endpointKey = (endpoint: Endpoint) => `${endpoint.address}|${endpoint.spiffeId}`;

export class Balancer {
  readonly #states = new Map<string, EndpointState>();
  /** Each snapshot's endpoint objects to their state, so a request builds no key string. */
  #byObject = new WeakMap<Endpoint, EndpointState>();
  readonly #random: () => number;
  readonly #now: () => number;

  constructor(options: { random?: () => number; now?: () => number } = {}) {
    this.#random = options.random ?? Math.random;
    this.#now = options.now ?? Date.now;
  }

  stateOf(endpoint: Endpoint): EndpointState {
    const cached = this.#byObject.get(endpoint);
    if (cached) return cached;
    const key = endpointKey(endpoint);
    let state = this.#states.get(key);
    if (!state) {
      state = {
        inFlight: 0,
        consecutiveFailures: 0,
        ejections: 0,
        ejectedUntilMs: 0,
        requests: 0,
        failures: 0,
      };
      this.#states.set(key, state);
    }
    this.#byObject.set(endpoint, state);
    return state;
  }

  /**
   * An endpoint for the next request, not `avoid` (the one a retry left)
   * when there is another. Ejected endpoints are skipped unless every
   * endpoint is ejected.
   */
  pick(endpoints: readonly Endpoint[], avoid?: Endpoint): Endpoint {
    if (endpoints.length === 1) return endpoints[0]!;
    const now = this.#now();
    let candidates = endpoints.filter((e) => e !== avoid && this.stateOf(e).ejectedUntilMs <= now);
    if (!candidates.length) candidates = endpoints.filter((e) => e !== avoid);
    if (!candidates.length) candidates = [...endpoints];
    if (candidates.length === 1) return candidates[0]!;
    const first = Math.floor(this.#random() * candidates.length);
    // A second draw among the others: two distinct choices.
    let second = Math.floor(this.#random() * (candidates.length - 1));
    if (second >= first) second++;
    const a = candidates[first]!;
    const b = candidates[second]!;
    return this.stateOf(b).inFlight < this.stateOf(a).inFlight ? b : a;
  }

  /** A request to `endpoint` starts. */
  started(endpoint: Endpoint): void {
    const state = this.stateOf(endpoint);
    state.inFlight++;
    state.requests++;
  }

  /**
   * A request to `endpoint` ended: `failed` when it could not connect or the
   * endpoint answered 502, 503 or 504. Returns true when this ejected it.
   */
  finished(endpoint: Endpoint, failed: boolean, service: readonly Endpoint[]): boolean {
    const state = this.stateOf(endpoint);
    state.inFlight = Math.max(0, state.inFlight - 1);
    if (!failed) {
      state.consecutiveFailures = 0;
      return false;
    }
    state.failures++;
    state.consecutiveFailures++;
    if (state.consecutiveFailures < CONSECUTIVE_FAILURES) return false;
    const now = this.#now();
    if (state.ejectedUntilMs > now) return false;
    const ejected = service.filter((e) => this.stateOf(e).ejectedUntilMs > now).length;
    if (ejected + 1 > Math.floor(service.length * MAX_EJECTED_SHARE)) return false;
    state.ejections++;
    state.ejectedUntilMs = now + Math.min(EJECTION_MAX_MS, EJECTION_BASE_MS * state.ejections);
    state.consecutiveFailures = 0;
    return true;
  }

  /** Forgets endpoints no longer in any service (after a snapshot). */
  retainOnly(endpoints: readonly Endpoint[]): void {
    const live = new Set(endpoints.map(endpointKey));
    for (const key of this.#states.keys()) if (!live.has(key)) this.#states.delete(key);
    // A forgotten endpoint's object must not keep its old state.
    this.#byObject = new WeakMap();
  }

  /** For /config: every endpoint's state now. */
  describe(endpoints: readonly Endpoint[]): object[] {
    const now = this.#now();
    return endpoints.map((endpoint) => {
      const state = this.stateOf(endpoint);
      return {
        service: `${endpoint.namespace}/${endpoint.service}`,
        address: endpoint.address,
        spiffeId: endpoint.spiffeId,
        state: state.ejectedUntilMs > now ? 'ejected' : 'active',
        ...(state.ejectedUntilMs > now
          ? { ejectedUntil: new Date(state.ejectedUntilMs).toISOString() }
          : {}),
        inFlight: state.inFlight,
        requests: state.requests,
        failures: state.failures,
        ejections: state.ejections,
      };
    });
  }
}

/**
 * A retry budget (Linkerd's): retries may add at most `ratio` of the
 * requests of the last `windowMs`, plus `minPerSecond`, so that during an
 * outage retries cannot multiply the load on what is left.
 */
export class RetryBudget {
  readonly #ratio: number;
  readonly #minPerSecond: number;
  readonly #windowMs: number;
  readonly #now: () => number;
  /** Requests and retries per second of the window, as a ring of one-second slots. */
  readonly #requests: number[];
  readonly #retries: number[];
  #slotSecond = 0;

  constructor(
    options: { ratio?: number; minPerSecond?: number; windowMs?: number; now?: () => number } = {},
  ) {
    this.#ratio = options.ratio ?? 0.2;
    this.#minPerSecond = options.minPerSecond ?? 10;
    this.#windowMs = options.windowMs ?? 10_000;
    this.#now = options.now ?? Date.now;
    const slots = Math.max(1, Math.round(this.#windowMs / 1000));
    this.#requests = new Array(slots).fill(0);
    this.#retries = new Array(slots).fill(0);
  }

  #advance(): number {
    const second = Math.floor(this.#now() / 1000);
    const slots = this.#requests.length;
    if (second - this.#slotSecond >= slots) {
      this.#requests.fill(0);
      this.#retries.fill(0);
    } else {
      for (let s = this.#slotSecond + 1; s <= second; s++) {
        this.#requests[s % slots] = 0;
        this.#retries[s % slots] = 0;
      }
    }
    this.#slotSecond = Math.max(this.#slotSecond, second);
    return second % slots;
  }

  /** A first attempt of a request. */
  request(): void {
    this.#requests[this.#advance()]!++;
  }

  /** Whether a retry may be spent now; spends it when so. */
  tryRetry(): boolean {
    const slot = this.#advance();
    const requests = this.#requests.reduce((a, b) => a + b, 0);
    const retries = this.#retries.reduce((a, b) => a + b, 0);
    const allowed = this.#ratio * requests + this.#minPerSecond * (this.#windowMs / 1000);
    if (retries + 1 > allowed) return false;
    this.#retries[slot]!++;
    return true;
  }
}
