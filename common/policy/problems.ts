/**
 * How a validator reports: every problem collected, each naming the
 * resource and JSON path and saying what was expected and what was found.
 * Shared by the RoutePolicy and HTTPRoute validators, so both read alike.
 */
import { FormatRegistry, type TSchema } from '@sinclair/typebox';
import { type ValueError, ValueErrorType } from '@sinclair/typebox/errors';
import { Value } from '@sinclair/typebox/value';
import { GATEWAY_DURATION_PATTERN, HOSTNAME_PATTERN } from './httproute-schema.ts';
import {
  BYTES_PATTERN,
  DNS_LABEL_PATTERN,
  DNS_SUBDOMAIN_PATTERN,
  DURATION_PATTERN,
  RATE_LIMIT_KEY_PATTERN,
} from './schema.ts';

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

const RFC3339 = /^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d+)?(Z|[+-]\d{2}:\d{2})$/;
/** RFC 3339 and a real calendar date: Date.parse rolls 2026-02-30 over to March 2. */
function isDateTime(value: string): boolean {
  if (!RFC3339.test(value) || Number.isNaN(Date.parse(value))) return false;
  const [year, month, day] = value.slice(0, 10).split('-').map(Number) as [number, number, number];
  const calendar = new Date(Date.UTC(year, month - 1, day));
  return calendar.getUTCMonth() === month - 1 && calendar.getUTCDate() === day;
}
FormatRegistry.Set('date-time', isDateTime);

const PATTERN_MEANING: Record<string, string> = {
  [HOSTNAME_PATTERN]: 'a host name such as api.example.com, or *. and one (*.example.com)',
  [DURATION_PATTERN]: 'a duration such as 100ms, 1s, 5m or 1h',
  [GATEWAY_DURATION_PATTERN]: 'a Gateway API duration such as 500ms, 10s, 1m30s or 0s (none)',
  [BYTES_PATTERN]: 'a size such as 512, 64Ki, 50Mi or 1Gi',
  [RATE_LIMIT_KEY_PATTERN]: 'principal, subject, claim:<name>, source-ip, consumer or route',
  '^https?://': 'an http:// or https:// URL',
  [DNS_LABEL_PATTERN]:
    'a DNS label: lower-case letters, digits and -, starting and ending with a letter or digit',
  [DNS_SUBDOMAIN_PATTERN]:
    'a DNS subdomain: lower-case letters, digits, - and ., starting and ending with a letter or digit',
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

/** `<kind> ns/name` when the document has those, else the fallback (say `document 2`). */
export function resourceLabel(doc: unknown, fallback: string, kind = 'RoutePolicy'): string {
  const metadata = (doc as { metadata?: { name?: unknown; namespace?: unknown } } | null)?.metadata;
  if (typeof metadata?.name !== 'string') return fallback;
  const namespace = typeof metadata.namespace === 'string' ? metadata.namespace : 'default';
  return `${kind} ${namespace}/${metadata.name}`;
}

export function structuralProblems(schema: TSchema, doc: unknown, resource: string): Problem[] {
  const seen = new Set<string>();
  const problems: Problem[] = [];
  for (const error of Value.Errors(schema, doc)) {
    // One problem per path: a missing field is also "not a string" there.
    if (seen.has(error.path)) continue;
    seen.add(error.path);
    problems.push({ resource, path: jsonPath(error.path), message: explain(error) });
  }
  return problems;
}

/** Collects problems for one resource; `error`/`warn` take the JSON path and the message. */
export class Findings {
  readonly errors: Problem[] = [];
  readonly warnings: Problem[] = [];
  readonly #resource: string;
  constructor(resource: string) {
    this.#resource = resource;
  }
  error(path: string, message: string): void {
    this.errors.push({ resource: this.#resource, path, message });
  }
  warn(path: string, message: string): void {
    this.warnings.push({ resource: this.#resource, path, message });
  }
}

export function exactlyOne(
  found: Findings,
  at: string,
  value: object,
  keys: readonly string[],
): string[] {
  const given = keys.filter((k) => (value as Record<string, unknown>)[k] !== undefined);
  if (given.length !== 1) {
    found.error(
      at,
      `expected exactly one of ${keys.join(', ')}; found ${given.length ? given.join(' and ') : 'none'}`,
    );
  }
  return given;
}
