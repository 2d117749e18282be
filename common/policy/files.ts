import { readdir, readFile, stat } from 'node:fs/promises';
import { join } from 'node:path';
import { parseAllDocuments } from 'yaml';
import { HTTPROUTE_KIND, type HttpRoute } from './httproute-schema.ts';
import { overlappingSelectorProblems } from './policy-set.ts';
import { formatProblem } from './problems.ts';
import type { RoutePolicy } from './schema.ts';
import { validateRoutePolicy } from './validate.ts';
import { validateHttpRoute } from './validate-httproute.ts';

export interface LoadedPolicies {
  /** Valid policies, in file then document order. Empty of meaning when `errors` is not. */
  readonly policies: RoutePolicy[];
  /** Valid Gateway API HTTPRoutes found beside them (for `postern gateway`), in the same order. */
  readonly httpRoutes: HttpRoute[];
  /** One line per problem: file, resource, JSON path, what was expected. */
  readonly errors: string[];
  readonly warnings: string[];
}

const POLICY_FILE = /\.ya?ml$/;

/** The policy files named by `paths`: files as given, folders' *.yaml / *.yml (not recursive), sorted. */
export async function policyFiles(paths: readonly string[]): Promise<string[]> {
  const files: string[] = [];
  for (const path of paths) {
    if ((await stat(path)).isDirectory()) {
      const entries = (await readdir(path)).filter((name) => POLICY_FILE.test(name)).sort();
      files.push(...entries.map((name) => join(path, name)));
    } else files.push(path);
  }
  return files;
}

/** What one file holds, validated on its own: its resources, and its problems. */
export interface LoadedFile extends LoadedPolicies {
  readonly file: string;
}

/** Parses and validates every RoutePolicy and HTTPRoute document in one file, collecting every problem. */
export async function loadPolicyFile(
  file: string,
  now = new Date(),
  options: { readonly lintUpTo?: number } = {},
): Promise<LoadedFile> {
  const policies: RoutePolicy[] = [];
  const httpRoutes: HttpRoute[] = [];
  const errors: string[] = [];
  const warnings: string[] = [];
  const loaded = { file, policies, httpRoutes, errors, warnings };
  const text = await readFile(file, 'utf8');
  if (text.trim() === '') {
    // Most likely a save caught half-way (truncate, then write): treating it
    // as "no policies" would drop whatever the file denied.
    errors.push(`${file}: the file is empty; delete it to remove its policies`);
    return loaded;
  }
  const documents = parseAllDocuments(text);
  const list = Array.isArray(documents) ? documents : [documents];
  if (list.every((document) => document.errors.length === 0 && document.contents === null)) {
    // Comments only: as suspicious as an empty file (a truncated save keeps its header).
    errors.push(`${file}: the file holds no document; delete it to remove its policies`);
    return loaded;
  }
  list.forEach((document, index) => {
    const label = `document ${index + 1}`;
    if (document.errors.length) {
      for (const error of document.errors) {
        const where = error.linePos?.[0];
        errors.push(
          `${file}${where ? `:${where.line}:${where.col}` : ''}: ${label}: YAML syntax: ${error.message.split('\n')[0]}`,
        );
      }
      return;
    }
    const doc = document.toJS();
    if (doc === null || doc === undefined) return; // an empty document (a trailing ---)
    if ((doc as { kind?: unknown }).kind === HTTPROUTE_KIND) {
      const checked = validateHttpRoute(doc, label);
      errors.push(...checked.errors.map((p) => formatProblem(p, file)));
      warnings.push(...checked.warnings.map((p) => formatProblem(p, file)));
      if (checked.route) httpRoutes.push(checked.route);
      return;
    }
    const result = validateRoutePolicy(doc, label, now, options);
    errors.push(...result.errors.map((p) => formatProblem(p, file)));
    warnings.push(...result.warnings.map((p) => formatProblem(p, file)));
    if (result.policy) policies.push(result.policy);
  });
  return loaded;
}

/**
 * The files' resources as one set, with the problems only the set has: a
 * resource defined in two places, selectors that overlap. The files' own
 * problems are not repeated here.
 */
export function combineFiles(files: readonly LoadedFile[]): LoadedPolicies {
  const policies: RoutePolicy[] = [];
  const httpRoutes: HttpRoute[] = [];
  const errors: string[] = [];
  const seen = new Map<string, string>();
  const sources: string[] = []; // the file of each policy, by index
  const unique = (file: string, key: string) => {
    const previous = seen.get(key);
    if (previous) {
      errors.push(
        `${file}: ${key}: metadata.name: the same resource is already defined in ${previous}`,
      );
      return false;
    }
    seen.set(key, file);
    return true;
  };
  for (const { file, policies: filePolicies, httpRoutes: fileRoutes } of files) {
    for (const route of fileRoutes)
      if (unique(file, `HTTPRoute ${route.metadata.namespace}/${route.metadata.name}`))
        httpRoutes.push(route);
    for (const policy of filePolicies) {
      if (!unique(file, `RoutePolicy ${policy.metadata.namespace}/${policy.metadata.name}`))
        continue;
      policies.push(policy);
      sources.push(file);
    }
  }
  for (const [index, message] of overlappingSelectorProblems(policies)) {
    const policy = policies[index]!;
    errors.push(
      `${sources[index]}: RoutePolicy ${policy.metadata.namespace}/${policy.metadata.name}: ${message}`,
    );
  }
  return { policies, httpRoutes, errors, warnings: [] };
}

/** Parses and validates every RoutePolicy and HTTPRoute document in `paths`, collecting every problem. */
export async function loadPolicies(
  paths: readonly string[],
  now = new Date(),
  options: { readonly lintUpTo?: number } = {},
): Promise<LoadedPolicies> {
  const files = await Promise.all(
    (await policyFiles(paths)).map((file) => loadPolicyFile(file, now, options)),
  );
  const combined = combineFiles(files);
  return {
    policies: combined.policies,
    httpRoutes: combined.httpRoutes,
    errors: [...files.flatMap((f) => f.errors), ...combined.errors],
    warnings: files.flatMap((f) => f.warnings),
  };
}
