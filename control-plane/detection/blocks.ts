/**
 * Callers blocked after exfiltration alerts (a route whose policy says
 * `exfiltration.action: block`): one entry per caller, workload and route,
 * kept in the state folder so a restart does not unblock anyone, pushed to
 * that workload's sidecars in their snapshots, and removed only by an
 * operator (DELETE /v1/blocks).
 */
import { readFile } from 'node:fs/promises';
import { writeFileAtomic } from '../../common/private-file.ts';
import type { Alert } from '../../common/usage.ts';
import type { Block } from '../../common/wire.ts';

/**
 * The detectors whose alerts block. Not novelty: a first call is not theft
 * (a new client would be cut off the day it ships); not egress, which has no
 * route and whose attempts the sidecar already refuses.
 */
const BLOCKING: ReadonlySet<Alert['detector']> = new Set([
  'cap',
  'volume',
  'spread',
  'slow-volume',
  'enumeration',
  'off-workload',
]);

export interface BlockEntry extends Block {
  /** `namespace/workload` whose route the caller is blocked on. */
  readonly workload: string;
}

export type BlockTarget = Pick<BlockEntry, 'principal' | 'workload' | 'route'>;

const same = (a: BlockTarget, b: BlockTarget) =>
  a.principal === b.principal && a.workload === b.workload && a.route === b.route;

export class BlockList {
  readonly #file: string;
  readonly #onChange: (byWorkload: ReadonlyMap<string, readonly Block[]>) => void;
  #entries: BlockEntry[];
  /** Writes in order, one at a time. */
  #saving: Promise<void> = Promise.resolve();

  private constructor(
    file: string,
    entries: BlockEntry[],
    onChange: (byWorkload: ReadonlyMap<string, readonly Block[]>) => void,
  ) {
    this.#file = file;
    this.#entries = entries;
    this.#onChange = onChange;
  }

  /** The list kept in `file` (empty when there is none yet); `onChange` is told of it now and after each change. */
  static async open(
    file: string,
    onChange: (byWorkload: ReadonlyMap<string, readonly Block[]>) => void,
  ): Promise<BlockList> {
    let entries: BlockEntry[] = [];
    try {
      entries = JSON.parse(await readFile(file, 'utf8')) as BlockEntry[];
    } catch (error) {
      if ((error as NodeJS.ErrnoException).code !== 'ENOENT') {
        throw new Error(`${file}: not a block list (${(error as Error).message})`);
      }
    }
    const list = new BlockList(file, entries, onChange);
    list.#publish();
    return list;
  }

  list(): readonly BlockEntry[] {
    return this.#entries;
  }

  /** Blocks the alert's caller on its route when the route's action is block and the detector is one that blocks. */
  consider(alert: Alert, action: 'alert' | 'block'): BlockEntry | undefined {
    if (action !== 'block' || !BLOCKING.has(alert.detector)) return undefined;
    if (!alert.workload || !alert.route) return undefined;
    const entry: BlockEntry = {
      principal: alert.principal,
      workload: alert.workload,
      route: alert.route,
      since: new Date().toISOString(),
      detector: alert.detector,
    };
    if (this.#entries.some((held) => same(held, entry))) return undefined;
    this.#entries = [...this.#entries, entry];
    this.#changed();
    return entry;
  }

  /** Unblocks; false when there was no such block. */
  clear(target: BlockTarget): boolean {
    const kept = this.#entries.filter((held) => !same(held, target));
    if (kept.length === this.#entries.length) return false;
    this.#entries = kept;
    this.#changed();
    return true;
  }

  /** Resolves once every change so far is on disk. */
  saved(): Promise<void> {
    return this.#saving;
  }

  #changed(): void {
    const snapshot = JSON.stringify(this.#entries, null, 2);
    this.#saving = this.#saving.then(() => writeFileAtomic(this.#file, `${snapshot}\n`));
    this.#publish();
  }

  #publish(): void {
    const byWorkload = new Map<string, Block[]>();
    for (const { workload, ...block } of this.#entries) {
      byWorkload.set(workload, [...(byWorkload.get(workload) ?? []), block]);
    }
    this.#onChange(byWorkload);
  }
}
