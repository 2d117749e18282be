import { overlappingSelectorProblems } from '../../common/policy/policy-set.ts';
import { formatProblem } from '../../common/policy/problems.ts';
import { validateRoutePolicy } from '../../common/policy/validate.ts';
import { validateHttpRoute } from '../../common/policy/validate-httproute.ts';
import {
  isBlockList,
  isGlobalRateLimitConfig,
  type Revocation,
  type Snapshot,
} from '../../common/wire.ts';
import { HttpRouteTable } from '../gateway/http-route-table.ts';
import type { CompiledJwt, JwtProviders } from '../identity/jwt-providers.ts';
import { ServiceDirectory } from '../upstream/service-directory.ts';
import { type CompiledPolicy, compilePolicies } from './compiled-policy.ts';

/** Everything the request path reads from a snapshot, compiled together and swapped as one reference. */
export interface AppliedSnapshot {
  readonly snapshot: Snapshot;
  readonly policy: CompiledPolicy;
  readonly directory: ServiceDirectory;
  /** Revoked identities → the last notBefore (epoch ms) of their refused certificates. */
  readonly revoked: ReadonlyMap<string, number>;
  /** Callers blocked on routes after exfiltration alerts, by blockKey(principal, route name). */
  readonly blocked: ReadonlySet<string>;
  /** The HTTPRoutes this workload routes by when it runs as a gateway (absent otherwise). */
  readonly httpRoutes: HttpRouteTable | undefined;
  /** The JWT providers of the policies in force; undefined when no policy accepts JWTs. */
  readonly jwt: CompiledJwt | undefined;
}

export const blockKey = (principal: string, route: string) => `${principal}\n${route}`;

export type ApplyResult = { readonly ok: true } | { readonly ok: false; readonly reason: string };

function isRevocationList(value: unknown): value is Revocation[] {
  return (
    Array.isArray(value) &&
    value.every(
      (r: Partial<Revocation> | null) =>
        typeof r?.spiffeId === 'string' &&
        typeof r.notBeforeUpTo === 'string' &&
        !Number.isNaN(Date.parse(r.notBeforeUpTo)),
    )
  );
}

/**
 * The sidecar's current snapshot. `apply` validates and compiles a candidate
 * completely before swapping it in with one assignment, so a request sees
 * either the old snapshot or the new one, never half of each, and a bad
 * candidate leaves the last good one in force.
 */
export class SnapshotState {
  readonly #namespace: string;
  readonly #jwt: JwtProviders | undefined;
  #current: AppliedSnapshot | undefined;

  /** Without `jwt`, policies' JWT providers are not compiled (unit tests of everything else). */
  constructor(namespace: string, jwt?: JwtProviders) {
    this.#namespace = namespace;
    this.#jwt = jwt;
  }

  get current(): AppliedSnapshot | undefined {
    return this.#current;
  }

  apply(candidate: unknown): ApplyResult {
    const snapshot = candidate as Snapshot;
    if (
      typeof snapshot?.version !== 'string' ||
      typeof snapshot.hash !== 'string' ||
      !Array.isArray(snapshot.policies) ||
      !Array.isArray(snapshot.registry) ||
      (snapshot.revoked !== undefined && !isRevocationList(snapshot.revoked)) ||
      (snapshot.rateLimit !== undefined && !isGlobalRateLimitConfig(snapshot.rateLimit)) ||
      (snapshot.blocked !== undefined && !isBlockList(snapshot.blocked)) ||
      (snapshot.meshDefault !== 'deny' && snapshot.meshDefault !== 'allow-authenticated')
    ) {
      return {
        ok: false,
        reason:
          'not a snapshot: expected version, hash, meshDefault, policies[], registry[], revoked[]?: {spiffeId, notBeforeUpTo}, rateLimit?: {redis?: redis:// URL, replicas >= 1}, blocked[]?: {principal, route, since, detector}',
      };
    }
    const revoked: ReadonlyMap<string, number> = new Map(
      (snapshot.revoked ?? []).map((r) => [r.spiffeId, Date.parse(r.notBeforeUpTo)]),
    );
    const blocked: ReadonlySet<string> = new Set(
      (snapshot.blocked ?? []).map((b) => blockKey(b.principal, b.route)),
    );
    const rejected = this.#rejectedPolicies(snapshot);
    if (rejected) {
      // Revocations and blocks do not wait for policies this sidecar cannot
      // apply (version skew, a stricter validator): well-formed lists take
      // effect at once, beside the last good policies. The snapshot is
      // still nacked.
      if (this.#current) this.#current = Object.freeze({ ...this.#current, revoked, blocked });
      return rejected;
    }
    try {
      this.#current = Object.freeze({
        snapshot,
        policy: compilePolicies(snapshot),
        directory: new ServiceDirectory(snapshot.registry, this.#namespace),
        revoked,
        jwt: this.#jwt?.compile(snapshot.policies),
        blocked,
        httpRoutes: snapshot.httpRoutes?.length
          ? new HttpRouteTable(snapshot.httpRoutes)
          : undefined,
      });
    } catch (error) {
      if (this.#current) this.#current = Object.freeze({ ...this.#current, revoked, blocked });
      return { ok: false, reason: `compilation failed: ${(error as Error).message}` };
    }
    return { ok: true };
  }

  /** Why a well-formed snapshot's policies cannot be applied, if they cannot. */
  #rejectedPolicies(snapshot: Snapshot): ApplyResult | undefined {
    // The control plane validated these already; the sidecar checks again
    // because it, not the control plane, is the one that enforces them. Errors
    // only: the control plane reported the warnings.
    const problems = snapshot.policies.flatMap((policy, i) =>
      validateRoutePolicy(policy, `policies[${i}]`, new Date(), { lintUpTo: 0 }).errors.map((p) =>
        formatProblem(p),
      ),
    );
    if (snapshot.httpRoutes !== undefined && !Array.isArray(snapshot.httpRoutes)) {
      return { ok: false, reason: 'not a snapshot: httpRoutes must be a list of HTTPRoutes' };
    }
    (snapshot.httpRoutes ?? []).forEach((route, i) => {
      for (const problem of validateHttpRoute(route, `httpRoutes[${i}]`).errors)
        problems.push(formatProblem(problem));
    });
    if (problems.length) return { ok: false, reason: problems.join('; ') };
    // Every policy in a snapshot selects this workload, so any disagreement on
    // a workload-wide setting leaves the effective policy ambiguous.
    for (const [index, message] of overlappingSelectorProblems(snapshot.policies)) {
      const policy = snapshot.policies[index]!;
      problems.push(`RoutePolicy ${policy.metadata.namespace}/${policy.metadata.name}: ${message}`);
    }
    return problems.length ? { ok: false, reason: problems.join('; ') } : undefined;
  }
}
