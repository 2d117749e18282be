/** What authorization decided, and why. Built when a snapshot is compiled; requests only pick one. */
import type { CompiledRateLimit } from '../rate-limit/limit.ts';

export type Mode = 'enforce' | 'audit';
export type Action = 'allow' | 'deny';

export type DecisionReason =
  | 'no-snapshot'
  | 'mesh-default-deny'
  | 'mesh-default-allow-authenticated'
  | 'unauthenticated'
  | 'deny-rule-matched'
  | 'allow-rule-matched'
  | 'no-allow-rule-matched'
  | 'no-route-default-allow'
  | 'no-route-default-deny'
  | 'route-default-allow'
  | 'route-default-deny';

export interface Decision {
  /** What the policy decided. In audit mode the request goes through even when this is false. */
  readonly allowed: boolean;
  readonly reason: DecisionReason;
  readonly mode: Mode;
  /** `namespace/name` of the deciding RoutePolicy, when one decided. */
  readonly policy?: string;
  readonly route?: string;
  /** `allow[0]`, `deny[1]`: the entry that decided, when one did. */
  readonly rule?: string;
  /** No allow entry matched, and one of them asks for JWT claims: a caller without a token gets 401. */
  readonly tokenRequired?: boolean;
  /** No allow entry matched, and one of them asks for a certificate-bound token: an unbound or foreign-bound one gets 401. */
  readonly bindingRequired?: boolean;
  /** The deciding route's rate limit (its own or its policy's default), which the rate-limit filter applies next. */
  readonly rateLimit?: CompiledRateLimit;
  /** For a template route (/orders/{id}): the path segment holding the resource id, for usage records. */
  readonly resourceSegment?: number;
  /** The route's `exfiltration.maxResponseBytes` when its action is block: the exfiltration guard enforces it. */
  readonly responseCap?: ResponseCapLimit;
  /** The route's `maxRequestBytes`: the request-body-limit filter enforces it. */
  readonly maxRequestBytes?: number;
}

/** At most `bytes` of responses to one caller per `perMs` on one route (`policy/route`), counted by this sidecar. */
export interface ResponseCapLimit {
  readonly route: string;
  readonly bytes: number;
  readonly perMs: number;
}

export function decision(fields: Decision): Decision {
  return Object.freeze({ ...fields });
}
