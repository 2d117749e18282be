/**
 * RoutePolicy validation: structure from the schema, then the semantic rules a
 * schema cannot say. Every problem is collected (a platform engineer fixes a
 * file once, not once per error), each naming the resource and JSON path and
 * saying what was expected and what was found.
 */
import { FormatRegistry, type TSchema } from '@sinclair/typebox';
import { type ValueError, ValueErrorType } from '@sinclair/typebox/errors';
import { Value } from '@sinclair/typebox/value';
import {
  BYTES_PATTERN,
  DURATION_PATTERN,
  type RoutePolicy,
  RoutePolicySchema,
  type Rule,
} from './schema.ts';

const RFC3339 = /^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d+)?(Z|[+-]\d{2}:\d{2})$/;
FormatRegistry.Set('date-time', (value) => RFC3339.test(value) && !Number.isNaN(Date.parse(value)));

export interface Problem {
  /** `kind namespace/name` of the resource, or its position in the file when it has no name. */
  readonly resource: string;
  /** JSON path inside the resource, e.g. spec.routes[0].match.methods[1]. */
  readonly path: string;
  readonly message: string;
}

export interface ValidationResult {
  readonly errors: Problem[];
  readonly warnings: Problem[];
}

export function formatProblem(problem: Problem, file?: string): string {
  return `${file ? `${file}: ` : ''}${problem.resource}: ${problem.path || '(document)'}: ${problem.message}`;
}

const PATTERN_MEANING: Record<string, string> = {
  [DURATION_PATTERN]: 'a duration such as 100ms, 1s, 5m or 1h',
  [BYTES_PATTERN]: 'a size such as 512, 64Ki, 50Mi or 1Gi',
  '^https?://': 'an http:// or https:// URL',
};

function describe(value: unknown): string {
  if (value === undefined) return 'nothing';
  if (value === null) return 'null';
  if (Array.isArray(value)) return 'a list';
  if (typeof value === 'object') return 'an object';
  return JSON.stringify(value);
}

function jsonPath(pointer: string): string {
  let out = '';
  for (const raw of pointer.split('/').slice(1)) {
    const part = raw.replace(/~1/g, '/').replace(/~0/g, '~');
    out += /^\d+$/.test(part) ? `[${part}]` : out ? `.${part}` : part;
  }
  return out;
}

function explain(error: ValueError): string {
  const schema = error.schema as TSchema & Record<string, unknown>;
  const found = `found ${describe(error.value)}`;
  switch (error.type) {
    case ValueErrorType.ObjectRequiredProperty:
      return 'is required';
    case ValueErrorType.ObjectAdditionalProperties:
      return `is not a known field; expected one of ${Object.keys(schema.properties as object).join(', ')}`;
    case ValueErrorType.Kind:
      if (Array.isArray(schema.enum)) return `expected one of ${schema.enum.join(', ')}; ${found}`;
      break;
    case ValueErrorType.String:
      return `expected a string; ${found}`;
    case ValueErrorType.Integer:
      return `expected a whole number; ${found}`;
    case ValueErrorType.IntegerMinimum:
      return `expected a whole number of at least ${schema.minimum}; ${found}`;
    case ValueErrorType.Array:
      return `expected a list; ${found}`;
    case ValueErrorType.ArrayMinItems:
      return `expected a list of at least ${schema.minItems} item(s); found ${(error.value as unknown[]).length}`;
    case ValueErrorType.Object:
      return `expected an object; ${found}`;
    case ValueErrorType.StringPattern:
      return `expected ${PATTERN_MEANING[schema.pattern as string] ?? `a value matching ${schema.pattern}`}; ${found}`;
    case ValueErrorType.StringMinLength:
      return `must not be empty`;
    case ValueErrorType.StringMaxLength:
      return `must be at most ${schema.maxLength} characters; ${found}`;
    case ValueErrorType.StringFormat:
      return `expected an RFC 3339 timestamp such as 2026-12-01T00:00:00Z; ${found}`;
  }
  return `${error.message}; ${found}`;
}

/** `RoutePolicy ns/name` when the document has those, else the fallback (say `document 2`). */
export function resourceLabel(doc: unknown, fallback: string): string {
  const metadata = (doc as { metadata?: { name?: unknown; namespace?: unknown } } | null)?.metadata;
  if (typeof metadata?.name !== 'string') return fallback;
  const namespace = typeof metadata.namespace === 'string' ? metadata.namespace : 'default';
  return `RoutePolicy ${namespace}/${metadata.name}`;
}

function structuralProblems(doc: unknown, resource: string): Problem[] {
  const seen = new Set<string>();
  const problems: Problem[] = [];
  for (const error of Value.Errors(RoutePolicySchema, doc)) {
    // One problem per path: a missing field is also "not a string" there.
    if (seen.has(error.path)) continue;
    seen.add(error.path);
    problems.push({ resource, path: jsonPath(error.path), message: explain(error) });
  }
  return problems;
}

const PRINCIPAL_PATTERNS = [
  /^\*$/,
  /^spiffe:\/\/[a-z0-9.-]+\/\*$/,
  /^spiffe:\/\/[a-z0-9.-]+\/ns\/[a-z0-9-]+\/\*$/,
  /^spiffe:\/\/[a-z0-9.-]+\/ns\/[a-z0-9-]+\/sa\/[a-z0-9-]+$/,
];

const TEMPLATE_SEGMENT = /^(\{[A-Za-z_][A-Za-z0-9_]*\}|[^{}]*)$/;

function semanticProblems(policy: RoutePolicy, resource: string, now: Date): ValidationResult {
  const errors: Problem[] = [];
  const warnings: Problem[] = [];
  const names = new Map<string, number>();
  policy.spec.routes.forEach((route, r) => {
    const at = `spec.routes[${r}]`;
    const first = names.get(route.name);
    if (first !== undefined) {
      errors.push({
        resource,
        path: `${at}.name`,
        message: `duplicates the name of spec.routes[${first}] (${JSON.stringify(route.name)})`,
      });
    } else names.set(route.name, r);

    const path = route.match?.path;
    if (path) {
      const given = (['exact', 'prefix', 'template'] as const).filter((k) => path[k] !== undefined);
      if (given.length !== 1) {
        errors.push({
          resource,
          path: `${at}.match.path`,
          message: `expected exactly one of exact, prefix, template; found ${given.length ? given.join(' and ') : 'none'}`,
        });
      }
      for (const kind of given) {
        const value = path[kind]!;
        if (!value.startsWith('/')) {
          errors.push({
            resource,
            path: `${at}.match.path.${kind}`,
            message: `expected a path starting with /; found ${JSON.stringify(value)}`,
          });
        } else if (kind === 'template') {
          const params = new Set<string>();
          for (const segment of value.split('/').slice(1)) {
            if (!TEMPLATE_SEGMENT.test(segment)) {
              errors.push({
                resource,
                path: `${at}.match.path.template`,
                message: `a parameter must be a whole segment such as {id}; found ${JSON.stringify(segment)}`,
              });
            } else if (segment.startsWith('{')) {
              if (params.has(segment)) {
                errors.push({
                  resource,
                  path: `${at}.match.path.template`,
                  message: `parameter ${segment} appears twice`,
                });
              }
              params.add(segment);
            }
          }
        }
      }
    }
    for (const list of ['allow', 'deny'] as const) {
      route[list]?.forEach((rule, i) => {
        checkRule(rule, `${at}.${list}[${i}]`, resource, now, errors, warnings);
      });
    }
  });
  return { errors, warnings };
}

function checkRule(
  rule: Rule,
  at: string,
  resource: string,
  now: Date,
  errors: Problem[],
  warnings: Problem[],
): void {
  if (rule.principals === undefined && rule.jwt === undefined) {
    errors.push({
      resource,
      path: at,
      message:
        'an entry needs at least one condition (principals or jwt); to match any authenticated caller write principals: ["*"]',
    });
  }
  rule.principals?.forEach((principal, p) => {
    if (!PRINCIPAL_PATTERNS.some((pattern) => pattern.test(principal))) {
      errors.push({
        resource,
        path: `${at}.principals[${p}]`,
        message: `expected "*", spiffe://<trust-domain>/ns/<namespace>/sa/<service-account>, spiffe://<trust-domain>/ns/<namespace>/* or spiffe://<trust-domain>/*; found ${JSON.stringify(principal)}`,
      });
    }
  });
  if (rule.expiresAt !== undefined && Date.parse(rule.expiresAt) <= now.getTime()) {
    warnings.push({
      resource,
      path: `${at}.expiresAt`,
      message: `${rule.expiresAt} is already past; this entry never matches`,
    });
  }
}

/**
 * Validates one parsed document. Returns the typed policy (with
 * metadata.namespace defaulted as kubectl does) only when there is no error.
 */
export function validateRoutePolicy(
  doc: unknown,
  fallbackLabel: string,
  now = new Date(),
): ValidationResult & { policy?: RoutePolicy } {
  const resource = resourceLabel(doc, fallbackLabel);
  const structural = structuralProblems(doc, resource);
  if (structural.length) return { errors: structural, warnings: [] };
  const typed = doc as RoutePolicy;
  const policy: RoutePolicy = {
    ...typed,
    metadata: { ...typed.metadata, namespace: typed.metadata.namespace ?? 'default' },
  };
  const result = semanticProblems(policy, resource, now);
  return result.errors.length ? result : { ...result, policy };
}
