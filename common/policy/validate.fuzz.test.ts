/** Property-based fuzzing of the RoutePolicy validator (fast-check; runs: test/fuzz/runs.ts). */
import fc from 'fast-check';
import t from 'tap';
import { fuzzParameters } from '../../test/fuzz/runs.ts';
import { validateRoutePolicy } from './validate.ts';

const NOW = new Date('2026-11-26T00:00:00Z');
const METHODS = ['GET', 'HEAD', 'POST', 'PUT', 'PATCH', 'DELETE', 'OPTIONS'] as const;
const segment = fc.stringMatching(/^[a-z0-9-]{1,8}$/);

/** RoutePolicies that are valid by construction: unique route names, real methods, paths, principals. */
const validPolicy = fc
  .uniqueArray(fc.stringMatching(/^[a-z]([a-z0-9-]{0,9}[a-z0-9])?$/), {
    minLength: 1,
    maxLength: 6,
  })
  .chain((names) =>
    fc.tuple(
      ...names.map((name) =>
        fc.record({
          name: fc.constant(name),
          match: fc.record({
            methods: fc.subarray([...METHODS], { minLength: 1 }),
            path: fc
              .array(segment, { minLength: 1, maxLength: 3 })
              .map((parts) => ({ prefix: `/${parts.join('/')}` })),
          }),
          allow: fc.constant([{ principals: [`spiffe://cluster.local/ns/shop/sa/${name}`] }]),
        }),
      ),
    ),
  )
  .map((routes) => ({
    apiVersion: 'postern.dev/v1alpha1',
    kind: 'RoutePolicy',
    metadata: { name: 'fuzzed', namespace: 'shop' },
    spec: { selector: { matchLabels: { app: 'orders' } }, routes },
  }));

t.test('any document at all gets an answer, never an exception', async (t) => {
  fc.assert(
    fc.property(fc.anything({ maxDepth: 4 }), (doc) => {
      const result = validateRoutePolicy(doc, 'fuzz.yaml', NOW);
      return (
        Array.isArray(result.errors) && (result.errors.length > 0 || result.policy !== undefined)
      );
    }),
    fuzzParameters,
  );
  t.pass();
});

t.test('a policy valid by construction validates, and each broken field is named', async (t) => {
  fc.assert(
    fc.property(
      validPolicy,
      fc.nat(),
      fc.constantFrom('method', 'name', 'path', 'principal', 'field'),
      (policy, pick, breakage) => {
        if (validateRoutePolicy(policy, 'fuzz.yaml', NOW).errors.length) return false;
        const broken = structuredClone(policy);
        const r = pick % broken.spec.routes.length;
        const route = broken.spec.routes[r] as Record<string, unknown> &
          (typeof broken.spec.routes)[number];
        const expected = {
          method: () => {
            route.match.methods = ['FETCH'] as never;
            return `spec.routes[${r}].match.methods[0]`;
          },
          name: () => {
            route.name = broken.spec.routes[(r + 1) % broken.spec.routes.length]!.name;
            return broken.spec.routes.length > 1
              ? `spec.routes[${Math.max(r, (r + 1) % broken.spec.routes.length)}].name`
              : undefined;
          },
          path: () => {
            route.match.path = { prefix: 'no-slash' };
            return `spec.routes[${r}].match.path.prefix`;
          },
          principal: () => {
            route.allow = [{ principals: ['spiffe://cluster.local/ns'] }] as never;
            return `spec.routes[${r}].allow[0].principals[0]`;
          },
          field: () => {
            route.bogus = 1;
            return `spec.routes[${r}].bogus`;
          },
        }[breakage]();
        const errors = validateRoutePolicy(broken, 'fuzz.yaml', NOW).errors;
        if (expected === undefined) return true;
        return errors.some((e) => e.path === expected);
      },
    ),
    fuzzParameters,
  );
  t.pass();
});
