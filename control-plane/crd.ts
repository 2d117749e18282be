/**
 * The RoutePolicy CustomResourceDefinition, generated from the same schema
 * the validator and the TypeScript types come from (common/policy/schema.ts),
 * converted to what Kubernetes accepts as a structural schema.
 */
import { API_VERSION, KIND, RoutePolicySpec } from '../common/policy/schema.ts';

type JsonSchema = { [key: string]: unknown };

const [GROUP, VERSION] = API_VERSION.split('/') as [string, string];

/**
 * TypeBox JSON Schema to a Kubernetes structural schema: symbol-keyed TypeBox
 * metadata dropped (JSON does that), `patternProperties` of a Record turned
 * into `additionalProperties`, and `additionalProperties: false` (which the
 * API server forbids beside `properties`) replaced by
 * `x-kubernetes-preserve-unknown-fields`. Without that the API server would
 * silently prune a misspelt field (`expiresat` on a just-in-time grant would
 * make it permanent); kept, it reaches the validator, which names it.
 */
export function toStructural(schema: JsonSchema): JsonSchema {
  const out: JsonSchema = {};
  for (const [key, value] of Object.entries(JSON.parse(JSON.stringify(schema)) as JsonSchema)) {
    if (key === 'additionalProperties' && value === false) {
      out['x-kubernetes-preserve-unknown-fields'] = true;
      continue;
    }
    if (key === 'patternProperties') {
      const patterns = Object.values(value as Record<string, JsonSchema>);
      if (patterns.length !== 1)
        throw new Error('only single-pattern records convert to additionalProperties');
      out.additionalProperties = toStructural(patterns[0]!);
    } else if (key === 'properties') {
      out.properties = Object.fromEntries(
        Object.entries(value as Record<string, JsonSchema>).map(([name, sub]) => [
          name,
          toStructural(sub),
        ]),
      );
    } else if (key === 'items') {
      out.items = toStructural(value as JsonSchema);
    } else {
      out[key] = value;
    }
  }
  return out;
}

export function routePolicyCrd(): JsonSchema {
  return {
    apiVersion: 'apiextensions.k8s.io/v1',
    kind: 'CustomResourceDefinition',
    metadata: { name: `routepolicies.${GROUP}` },
    spec: {
      group: GROUP,
      scope: 'Namespaced',
      names: {
        kind: KIND,
        listKind: `${KIND}List`,
        plural: 'routepolicies',
        singular: 'routepolicy',
        shortNames: ['rp'],
      },
      versions: [
        {
          name: VERSION,
          served: true,
          storage: true,
          additionalPrinterColumns: [
            { name: 'Mode', type: 'string', jsonPath: '.spec.mode' },
            { name: 'Default', type: 'string', jsonPath: '.spec.defaultAction' },
            { name: 'Age', type: 'date', jsonPath: '.metadata.creationTimestamp' },
          ],
          schema: {
            openAPIV3Schema: {
              type: 'object',
              description:
                'Per-route authorization, rate limits and exfiltration guards for the workloads it selects.',
              required: ['spec'],
              properties: {
                apiVersion: { type: 'string' },
                kind: { type: 'string' },
                metadata: { type: 'object' },
                spec: toStructural(RoutePolicySpec as unknown as JsonSchema),
              },
            },
          },
        },
      ],
    },
  };
}
