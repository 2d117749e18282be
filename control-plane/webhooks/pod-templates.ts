/**
 * Where a manifest keeps its pod: a Pod is one; Deployments, StatefulSets,
 * DaemonSets, ReplicaSets and Jobs hold one at spec.template; a CronJob at
 * spec.jobTemplate.spec.template. `postern inject` mutates each in place.
 */
import type { PodTemplate } from './injection.ts';

type Doc = Record<string, unknown> & { kind?: unknown; spec?: Record<string, unknown> };

const TEMPLATED = new Set([
  'Deployment',
  'StatefulSet',
  'DaemonSet',
  'ReplicaSet',
  'Job',
  'ReplicationController',
]);

export interface TemplateSlot {
  readonly template: PodTemplate;
  /** Puts the mutated template back where it came from. */
  set(template: PodTemplate): void;
}

function isTemplate(value: unknown): value is PodTemplate {
  const spec = (value as { spec?: { containers?: unknown } } | undefined)?.spec;
  return Array.isArray(spec?.containers);
}

/** The pod template of `doc`, or undefined for a kind that has none (a Service, a ConfigMap...). */
export function podTemplateOf(doc: unknown): TemplateSlot | undefined {
  if (!doc || typeof doc !== 'object') return undefined;
  const object = doc as Doc;
  if (object.kind === 'Pod' && isTemplate(object)) {
    return {
      template: {
        metadata: object.metadata as PodTemplate['metadata'],
        spec: object.spec as PodTemplate['spec'],
      },
      set(template) {
        object.metadata = template.metadata;
        object.spec = template.spec;
      },
    };
  }
  const holder =
    object.kind === 'CronJob'
      ? ((object.spec?.jobTemplate as Doc | undefined)?.spec as Record<string, unknown> | undefined)
      : TEMPLATED.has(String(object.kind))
        ? object.spec
        : undefined;
  if (!holder || !isTemplate(holder.template)) return undefined;
  return {
    template: holder.template,
    set(template) {
      holder.template = template;
    },
  };
}
