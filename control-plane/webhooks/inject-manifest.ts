/**
 * `postern inject` on a multi-document manifest: every document with a pod
 * template gets what the webhook would give its pods (offline, so the pod's
 * own annotation is the only opt-out: asking is the opt-in); every other
 * document passes unchanged, comments and all.
 */
import { parseAllDocuments } from 'yaml';
import { ConfigError } from '../../common/errors.ts';
import { type InjectionSettings, injectionDecision, injectPod } from './injection.ts';
import { podTemplateOf } from './pod-templates.ts';

export interface InjectedManifest {
  readonly yaml: string;
  /** One line per document: what was injected or skipped and why, and warnings. */
  readonly notes: readonly string[];
}

export function injectManifest(
  text: string,
  file: string,
  settings: InjectionSettings,
): InjectedManifest {
  const documents = parseAllDocuments(text);
  const notes: string[] = [];
  const out: string[] = [];
  documents.forEach((document, index) => {
    if (document.errors.length)
      throw new ConfigError(`${file}: document ${index + 1}: ${document.errors[0]!.message}`);
    const object = document.toJS() as Record<string, unknown> | null;
    const slot = podTemplateOf(object);
    const label = `${file}: ${String(object?.kind ?? 'document')} ${String((object?.metadata as { name?: string } | undefined)?.name ?? index + 1)}`;
    if (!slot) {
      out.push(document.toString());
      return;
    }
    const decision = injectionDecision(slot.template, undefined);
    if (!decision.inject) {
      notes.push(`${label}: not injected (${decision.reason})`);
      out.push(document.toString());
      return;
    }
    const injected = injectPod(slot.template, settings);
    slot.set(injected.pod);
    for (const warning of injected.warnings) notes.push(`${label}: warning: ${warning}`);
    notes.push(`${label}: injected`);
    document.contents = document.createNode(object) as typeof document.contents;
    out.push(document.toString());
  });
  return { yaml: out.map((doc) => (doc.startsWith('---') ? doc : `---\n${doc}`)).join(''), notes };
}
