/**
 * Where each identity's pods run, for the off-workload detector: the pod
 * addresses usage reports state (source.principal, source.address), each
 * remembered for `retentionMs` of event time after it last reported, so a
 * pod replaced in a rollout stops vouching for its old address; and, live,
 * the control plane's registry of watching sidecars.
 */
export class WorkloadAddresses {
  readonly #seen = new Map<string, Map<string, number>>();
  readonly #retentionMs: number;
  readonly #registered: (principal: string) => Iterable<string> | undefined;

  constructor(
    retentionMs: number,
    registered: (principal: string) => Iterable<string> | undefined = () => undefined,
  ) {
    this.#retentionMs = retentionMs;
    this.#registered = registered;
  }

  /** The pods that reported in a window (event time `startMs`). */
  saw(pods: ReadonlyMap<string, ReadonlySet<string>>, startMs: number): void {
    for (const [principal, addresses] of pods) {
      const known = this.#seen.get(principal) ?? new Map<string, number>();
      for (const address of addresses) known.set(address, startMs);
      this.#seen.set(principal, known);
    }
  }

  /** Addresses where `principal` runs as of `startMs`; undefined when it runs nowhere we know of. */
  of(principal: string, startMs: number): ReadonlySet<string> | undefined {
    const out = new Set<string>(this.#registered(principal) ?? []);
    const known = this.#seen.get(principal);
    if (known) {
      for (const [address, lastMs] of known) {
        if (startMs - lastMs <= this.#retentionMs) out.add(address);
        else known.delete(address);
      }
      if (!known.size) this.#seen.delete(principal);
    }
    return out.size ? out : undefined;
  }
}
