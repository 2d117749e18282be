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

function linearSelect(
  routes: readonly CompiledRoute[],
  facts: RouteFacts,
): CompiledRoute | undefined {
  return [...routes]
    .sort((a, b) => a.rank - b.rank)
    .find(
      (route) =>
        (!route.methods || route.methods.has(facts.method)) &&
        (route.headers ?? []).every((h) =>
          h.kind === 'present'
            ? (facts.headers?.[h.name] !== undefined) === h.present
            : h.kind === 'exact'
              ? facts.headers?.[h.name] === h.value
              : String(facts.headers?.[h.name] ?? '\u0000').startsWith(h.value),
        ) &&
        pathMatches(route.path, facts.path),
    );
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
            ...(next() < 0.2 ? { headers: [{ name: 'X-Tenant', exact: pick(['a', 'b']) }] } : {}),
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
          const expected = linearSelect(compiled.table.routes, facts);
          const actual = compiled.table.select(facts);
          if (actual?.name !== expected?.name) {
            t.fail(
              `round ${round}: ${facts.method} ${facts.path} ${JSON.stringify(facts.headers)} chose ${actual?.name} but a linear scan chooses ${expected?.name}\n${JSON.stringify(routes)}`,
            );
            return;
          }
        }
      }
    }
    t.pass('200 random route sets agree on 8,000 requests');
  },
);
