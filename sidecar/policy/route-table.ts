/**
 * Route selection that does not grow with the number of routes: exact paths
 * in a Map, templates and prefixes in tries keyed by path segment. A request
 * walks at most one trie path per index (its own segments), then takes the
 * lowest-ranked route there whose method and header conditions hold. Built
 * once per snapshot.
 */
import type { CompiledHeaderMatch, CompiledRoute } from './compiled-policy.ts';

export interface RouteFacts {
  readonly method: string;
  /** Canonical path. */
  readonly path: string;
  /** Request headers as Node gives them: lower-case names. */
  readonly headers?: Readonly<Record<string, string | string[] | undefined>>;
}

class TrieNode {
  readonly literals = new Map<string, TrieNode>();
  /** The node one segment up (prefix selection walks back up through these). */
  readonly parent: TrieNode | undefined;
  /** A `{parameter}` segment (templates only). */
  param: TrieNode | undefined;
  /** Routes whose path ends at this node, in rank order. */
  readonly routes: CompiledRoute[] = [];

  constructor(parent?: TrieNode) {
    this.parent = parent;
  }

  child(segment: string | null): TrieNode {
    if (segment === null) {
      this.param ??= new TrieNode(this);
      return this.param;
    }
    let node = this.literals.get(segment);
    if (!node) {
      node = new TrieNode(this);
      this.literals.set(segment, node);
    }
    return node;
  }
}

function headerHolds(match: CompiledHeaderMatch, headers: RouteFacts['headers']): boolean {
  const raw = headers?.[match.name];
  if (match.kind === 'present') return (raw !== undefined) === match.present;
  if (raw === undefined) return false;
  const value = Array.isArray(raw) ? raw.join(', ') : raw;
  return match.kind === 'exact' ? value === match.value : value.startsWith(match.value);
}

/** Method and header conditions: the parts of a match that are not the path. */
function conditionsHold(route: CompiledRoute, facts: RouteFacts): boolean {
  if (route.methods && !route.methods.has(facts.method)) return false;
  if (route.headers) {
    for (const match of route.headers) if (!headerHolds(match, facts.headers)) return false;
  }
  return true;
}

function firstHolding(
  routes: readonly CompiledRoute[],
  facts: RouteFacts,
): CompiledRoute | undefined {
  for (const route of routes) if (conditionsHold(route, facts)) return route;
  return undefined;
}

export class RouteTable {
  /** Every route, in rank order (what /config shows). */
  readonly routes: readonly CompiledRoute[];
  readonly #exact = new Map<string, CompiledRoute[]>();
  readonly #templates = new TrieNode();
  readonly #prefixes = new TrieNode();
  /** Deepest template in segments: no request with more segments can match one. */
  #maxTemplateDepth = 0;

  /** `routes` must be in rank order. */
  constructor(routes: readonly CompiledRoute[]) {
    this.routes = routes;
    for (const route of routes) {
      const path = route.path;
      if (path.kind === 'exact') {
        const list = this.#exact.get(path.value) ?? [];
        list.push(route);
        this.#exact.set(path.value, list);
      } else if (path.kind === 'template') {
        let node = this.#templates;
        const segments = path.segments.slice(1); // drop the '' before the leading '/'
        for (const segment of segments) node = node.child(segment);
        node.routes.push(route);
        this.#maxTemplateDepth = Math.max(this.#maxTemplateDepth, segments.length);
      } else {
        let node = this.#prefixes;
        if (path.kind === 'prefix')
          for (const segment of path.value.split('/').slice(1)) node = node.child(segment);
        node.routes.push(route);
      }
    }
  }

  select(facts: RouteFacts): CompiledRoute | undefined {
    const exact = this.#exact.get(facts.path);
    const fromExact = exact && firstHolding(exact, facts);
    if (fromExact) return fromExact;

    const segments = facts.path.split('/');
    // segments[0] is the '' before the leading '/'.
    if (segments.length - 1 <= this.#maxTemplateDepth) {
      const fromTemplate = this.#bestTemplate(this.#templates, segments, 1, facts, undefined);
      if (fromTemplate) return fromTemplate;
    }

    // Longest prefix first: walk down as far as the segments go, then back up.
    let node = this.#prefixes;
    for (let i = 1; i < segments.length; i++) {
      const next = node.literals.get(segments[i]!);
      if (!next) break;
      node = next;
    }
    for (let at: TrieNode | undefined = node; at; at = at.parent) {
      const route = firstHolding(at.routes, facts);
      if (route) return route;
    }
    return undefined;
  }

  /** Depth-first over literal and parameter branches; keeps the lowest-ranked route that holds. */
  #bestTemplate(
    node: TrieNode,
    segments: readonly string[],
    index: number,
    facts: RouteFacts,
    best: CompiledRoute | undefined,
  ): CompiledRoute | undefined {
    if (index === segments.length) {
      const route = firstHolding(node.routes, facts);
      return route && (!best || route.rank < best.rank) ? route : best;
    }
    const segment = segments[index]!;
    const literal = node.literals.get(segment);
    let result = best;
    if (literal) result = this.#bestTemplate(literal, segments, index + 1, facts, result);
    // A parameter is never empty.
    if (node.param && segment !== '')
      result = this.#bestTemplate(node.param, segments, index + 1, facts, result);
    return result;
  }
}
