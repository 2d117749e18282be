import type { UsageReport } from '../../common/usage.ts';
import type { BlockList, BlockTarget } from './blocks.ts';
import type { LiveDetection } from './live-detection.ts';

/**
 * Where the API hands detection its input: usage reports from sidecars and
 * operators' clearing of blocks. One replica applies them at once
 * (localInput); several share them through Redis first (shared-log.ts), so
 * that each applies everyone's, in one order.
 */
export interface DetectionInput {
  report(report: UsageReport): Promise<void>;
  /** False when the caller was not blocked there. */
  clear(target: BlockTarget): Promise<boolean>;
}

export function localInput(detection: LiveDetection, blocks: BlockList): DetectionInput {
  return {
    report: async (report) => detection.report(report),
    clear: async (target) => {
      const cleared = blocks.clear(target);
      await blocks.saved();
      return cleared;
    },
  };
}
