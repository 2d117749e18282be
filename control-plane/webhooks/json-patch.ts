/**
 * The JSON Patch (RFC 6902) that turns a pod into its injected form: one
 * operation per top-level field the injection touches, `add` where the pod
 * had none and `replace` where it had one. Whole fields rather than a diff:
 * the patch is applied to the object the API server holds, which is the one
 * the webhook was sent, so nothing can have moved in between.
 */
import type { PodTemplate } from './injection.ts';

export interface PatchOperation {
  readonly op: 'add' | 'replace';
  readonly path: string;
  readonly value: unknown;
}

const TOUCHED = [
  ['metadata', 'annotations'],
  ['spec', 'initContainers'],
  ['spec', 'containers'],
  ['spec', 'volumes'],
] as const;

export function injectionPatch(before: PodTemplate, after: PodTemplate): PatchOperation[] {
  const ops: PatchOperation[] = [];
  if (!before.metadata && after.metadata) ops.push({ op: 'add', path: '/metadata', value: {} });
  for (const [part, field] of TOUCHED) {
    const old = (before[part] as Record<string, unknown> | undefined)?.[field];
    const value = (after[part] as Record<string, unknown> | undefined)?.[field];
    if (value === undefined || JSON.stringify(old) === JSON.stringify(value)) continue;
    ops.push({ op: old === undefined ? 'add' : 'replace', path: `/${part}/${field}`, value });
  }
  return ops;
}
