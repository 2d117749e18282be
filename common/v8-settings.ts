import { setFlagsFromString } from 'node:v8';

/**
 * V8 settings the data plane needs, applied by the `postern` binary itself
 * as a role starts (so a sidecar behaves the same under `postern up`, in a
 * container and in the bench, whatever NODE_OPTIONS says).
 *
 * Allocation-site pretenuring off. V8 watches how many objects from each
 * allocation site survive a young-generation collection and, past a
 * threshold, allocates that site's objects straight into the old generation.
 * A proxy's first seconds under load (handshakes, cold code, requests piling
 * up behind them) make per-request sites look long-lived, and the decision
 * sticks: pretenured objects carry no feedback to undo it. From then on each
 * dead request object in the old generation keeps the young objects it
 * points to alive through every scavenge until the next full collection.
 * Measured in the sidecar at 1,000 rps (`--trace-gc-nvp`): 3 to 9 MB of each
 * ~25 MB young generation survived and was promoted, scavenges took 10 to
 * 40 ms (the p99 tail) and the heap grew to ~300 MB; with pretenuring off,
 * ~50 kB survive and scavenges take about 1 ms. A bare Node proxy that never
 * tripped the heuristic behaved like the second case. What pretenuring is
 * for (large long-lived structures built in bulk) is done once per snapshot
 * here, where one extra copy costs nothing that matters.
 *
 * V8 reads the flag when it digests survival feedback, so setting it at
 * start, before the role has served anything, takes effect.
 */
export function applyDataPlaneV8Settings(): void {
  setFlagsFromString('--no-allocation-site-pretenuring');
}
