import type { Alert } from '../../common/usage.ts';
import { callerAlert } from './caller-alert.ts';
import type { CallerUsage } from './window.ts';

/**
 * off-workload identity: a workload's SPIFFE ID presented from an address
 * where no pod of that identity runs (`runsAt`, from the registry): its key
 * was taken and is used elsewhere. An identity that runs nowhere in the mesh
 * (a person's or a CI job's client certificate) has no workload to be off,
 * and is left to novelty. Needs no learning: the registry is the baseline.
 */
export function offWorkloadAlert(
  usage: CallerUsage,
  runsAt: ReadonlySet<string> | undefined,
  startMs: number,
): Alert | undefined {
  if (!runsAt?.size || !usage.addresses.size) return undefined;
  const foreign = [...usage.addresses].filter((address) => !runsAt.has(address));
  if (!foreign.length) return undefined;
  return callerAlert(usage, 'off-workload', 'high', startMs, {
    presentedFrom: foreign,
    registeredAt: [...runsAt].slice(0, 16),
    requests: usage.requests,
    responseBytes: usage.responseBytes,
  });
}
