import { readFile } from 'node:fs/promises';
import { CustomResourceDefinition } from 'kubernetes-models/apiextensions.k8s.io/v1/CustomResourceDefinition';
import t from 'tap';
import { routePolicyCrd } from '../control-plane/crd.ts';
import { GENERATED } from './generate.ts';

type Node = Record<string, unknown>;

/** The rules of a Kubernetes structural schema that a generator could break; returns where each is broken. */
function structuralViolations(node: Node, at: string): string[] {
  const problems: string[] = [];
  if (typeof node.type !== 'string') problems.push(`${at}: no type`);
  for (const forbidden of [
    'const',
    'anyOf',
    'oneOf',
    'allOf',
    'not',
    '$ref',
    'patternProperties',
    'definitions',
  ]) {
    if (forbidden in node) problems.push(`${at}: uses ${forbidden}`);
  }
  if ('properties' in node && 'additionalProperties' in node)
    problems.push(`${at}: both properties and additionalProperties`);
  for (const [name, sub] of Object.entries((node.properties as Record<string, Node>) ?? {})) {
    problems.push(...structuralViolations(sub, `${at}.${name}`));
  }
  if (node.items) problems.push(...structuralViolations(node.items as Node, `${at}[]`));
  if (typeof node.additionalProperties === 'object') {
    problems.push(...structuralViolations(node.additionalProperties as Node, `${at}{}`));
  }
  return problems;
}

t.test('the committed manifests are what `npm run generate` writes', async (t) => {
  for (const [path, render] of Object.entries(GENERATED)) {
    t.equal(await readFile(path, 'utf8'), render(), `${path} is up to date (run npm run generate)`);
  }
});

t.test('the RoutePolicy CRD has a structural schema', async (t) => {
  const crd = routePolicyCrd() as { spec: { versions: { schema: { openAPIV3Schema: Node } }[] } };
  t.same(structuralViolations(crd.spec.versions[0]!.schema.openAPIV3Schema, 'openAPIV3Schema'), []);
});

t.test(
  'the RoutePolicy CRD validates against the official CustomResourceDefinition schema',
  async (t) => {
    t.doesNotThrow(() => new CustomResourceDefinition(routePolicyCrd() as never).validate());
    const broken = routePolicyCrd() as { spec: Record<string, unknown> };
    delete broken.spec.names;
    t.throws(
      () => new CustomResourceDefinition(broken as never).validate(),
      'and that validation does reject a CRD without names',
    );
  },
);

t.test('the structural check itself catches what Kubernetes rejects', async (t) => {
  t.same(
    structuralViolations(
      { type: 'object', properties: { a: { anyOf: [] } }, additionalProperties: false },
      's',
    ),
    ['s: both properties and additionalProperties', 's.a: no type', 's.a: uses anyOf'],
  );
});
