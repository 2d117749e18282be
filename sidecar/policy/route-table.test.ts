import t from 'tap';
import type { Route, RoutePolicy } from '../../common/policy/schema.ts';
import { type CompiledPath, type CompiledRoute, compilePolicies } from './compiled-policy.ts';
import type { RouteFacts } from './route-table.ts';

// The obvious linear algorithm, as the oracle the indexed table must agree with.
function pathMatches(path: CompiledPath, requestPath: string): boolean {
  if (path.kind === 'any') return true;
  if (path.kind === 'exact') return requestPath === path.value;
  if (path.kind === 'prefix')
    return requestPath === path.value || requestPath.startsWith(`${path.value}/`);
  const request = requestPath.split('/');
  return (
    request.length === path.segments.length &&
    path.segments.every((literal, i) =>
      literal === null ? request[i] !== '' : literal === request[i],
    )
  );
}

/**
 * DESIGN.md's precedence, written from the policy as authored (not from the
 * compiler's rank): exact, then template (more literal segments, then more
 * segments), then the longest prefix; then a method condition; then more
 * header matches; then order.
 */
function precedenceKey(route: Route, order: number): number[] {
  const path = route.match?.path;
  const trimmed = (p: string) => p.replace(/\/+$/, '');
  const kind = path?.exact !== undefined ? 0 : path?.template !== undefined ? 1 : 2;
  const specificity =
    path?.exact !== undefined
      ? path.exact.length
      : path?.template !== undefined
        ? path.template.split('/').filter((s) => s && !s.startsWith('{')).length * 1000 +
          path.template.split('/').length
        : path?.prefix !== undefined
          ? trimmed(path.prefix).length
          : 0;
  return [
    kind,
    -specificity,
    route.match?.methods ? 0 : 1,
    -(route.match?.headers?.length ?? 0),
    order,
  ];
}

function linearSelect(
  routes: readonly Route[],
  compiledByName: Map<string, CompiledRoute>,
  facts: RouteFacts,
): string | undefined {
  const ordered = routes
    .map((route, order) => ({ route, key: precedenceKey(route, order) }))
    .sort((a, b) => {
      const i = a.key.findIndex((v, j) => v !== b.key[j]);
      return i === -1 ? 0 : a.key[i]! - b.key[i]!;
    });
  return ordered.find(({ route }) => {
    const compiled = compiledByName.get(route.name)!;
    return (
      (!route.match?.methods || route.match.methods.includes(facts.method as never)) &&
      (route.match?.headers ?? []).every((h) => {
        const value = facts.headers?.[h.name.toLowerCase()];
        if (h.present !== undefined) return (value !== undefined) === h.present;
        if (value === undefined) return false;
        return h.exact !== undefined ? value === h.exact : String(value).startsWith(h.prefix!);
      }) &&
      pathMatches(compiled.path, facts.path)
    );
  })?.route.name;
}

// A small deterministic generator (mulberry32) so failures replay.
function random(seed: number) {
  let a = seed;
  return () => {
    a = (a + 0x6d2b79f5) | 0;
    let x = Math.imul(a ^ (a >>> 15), 1 | a);
    x = (x + Math.imul(x ^ (x >>> 7), 61 | x)) ^ x;
    return ((x ^ (x >>> 14)) >>> 0) / 4294967296;
  };
}

const WORDS = ['orders', 'items', 'admin', 'v1', '7', '42', 'export', ''];

t.test(
  'the indexed route table picks the same route as a linear scan in precedence order',
  async (t) => {
    const next = random(20261125);
    const pick = <T>(list: readonly T[]) => list[Math.floor(next() * list.length)]!;
    for (let round = 0; round < 200; round++) {
      const routes: Route[] = [];
      for (let i = 0; i < 1 + Math.floor(next() * 12); i++) {
        const depth = 1 + Math.floor(next() * 3);
        const segments = Array.from({ length: depth }, () => pick(WORDS.slice(0, -1)));
        const kind = pick(['exact', 'prefix', 'template', 'any'] as const);
        const path =
          kind === 'any'
            ? undefined
            : kind === 'template'
              ? {
                  template: `/${segments.map((s, j) => (j > 0 && next() < 0.5 ? `{p${j}}` : s)).join('/')}`,
                }
              : { [kind]: `/${segments.join('/')}` };
        routes.push({
          name: `r${i}`,
          match: {
            ...(path ? { path } : {}),
            ...(next() < 0.4 ? { methods: [pick(['GET', 'POST'] as const)] } : {}),
            ...(next() < 0.3
              ? {
                  headers: [
                    pick([
                      { name: 'X-Tenant', exact: pick(['a', 'b']) },
                      { name: 'x-tenant', prefix: 'b' },
                      { name: 'X-Tenant', present: next() < 0.5 },
                    ]),
                  ],
                }
              : {}),
          },
        });
      }
      const policy: RoutePolicy = {
        apiVersion: 'postern.dev/v1alpha1',
        kind: 'RoutePolicy',
        metadata: { name: 'p', namespace: 'shop' },
        spec: { routes },
      };
      const compiled = compilePolicies({ version: '1.1', meshDefault: 'deny', policies: [policy] });
      for (const method of ['GET', 'POST']) {
        for (let q = 0; q < 20; q++) {
          const facts: RouteFacts = {
            method,
            path: `/${Array.from({ length: 1 + Math.floor(next() * 4) }, () => pick(WORDS)).join('/')}`,
            headers: next() < 0.5 ? { 'x-tenant': pick(['a', 'b']) } : {},
          };
          const byName = new Map(compiled.table.routes.map((route) => [route.name, route]));
          const expected = linearSelect(routes, byName, facts);
          const actual = compiled.table.select(facts);
          if (actual?.name !== expected) {
            t.fail(
              `round ${round}: ${facts.method} ${facts.path} ${JSON.stringify(facts.headers)} chose ${actual?.name} but a linear scan chooses ${expected}\n${JSON.stringify(routes)}`,
            );
            return;
          }
        }
      }
    }
    t.pass('200 random route sets agree on 8,000 requests');
  },
);
