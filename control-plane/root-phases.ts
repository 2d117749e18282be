import { PosternError } from '../common/errors.ts';

/**
 * The phases of a mesh root rotation (SPIRE's prepared, active and old):
 *
 *   steady    One root: it signs, and it is the whole trust bundle.
 *   prepared  A new root joins the bundle and signs nothing yet; the old root
 *             goes on signing. Sidecars take the bundle from their snapshots,
 *             so by the time anything carries the new root's signature every
 *             peer already accepts it.
 *   active    The new root signs (SVIDs, the control plane's own certificate);
 *             the old root stays in the bundle, without its key, until every
 *             certificate it signed has expired: the switch plus the longest
 *             lifetime of a certificate it issued.
 *   steady    The old root leaves the bundle; what it signed is refused from
 *             then on.
 *
 * Pure: each step takes the time as an argument (tests bring their own
 * clock); persisting a step and acting on it is mesh-authority.ts's job.
 */

/** What the phases need of a root: its certificate, which goes into the bundle. */
export interface Root {
  readonly certPem: string;
}

export interface Steady<R extends Root> {
  readonly phase: 'steady';
  readonly signing: R;
}

export interface Prepared<R extends Root> {
  readonly phase: 'prepared';
  /** The old root, still signing. */
  readonly signing: R;
  /** The new root: trusted, not signing. */
  readonly next: R;
  readonly startedAtMs: number;
  /** Least time the new root is announced before it may sign (see `activatesNoSoonerThan`). */
  readonly propagationMs: number;
}

export interface Active<R extends Root> {
  readonly phase: 'active';
  /** The new root. */
  readonly signing: R;
  /** The old root's certificate (PEM); its key is gone, it signs nothing more. */
  readonly retiring: string;
  readonly startedAtMs: number;
  readonly activatedAtMs: number;
  /** When the last certificate the old root signed has expired. */
  readonly retireAtMs: number;
}

export type Roots<R extends Root> = Steady<R> | Prepared<R> | Active<R>;

/** A rotation was asked for while one is under way (409). */
export class RotationInProgressError extends PosternError {
  constructor(phase: 'prepared' | 'active') {
    super(
      'POSTERN_ROTATION_IN_PROGRESS',
      `a root rotation is already under way (phase ${phase}); one runs at a time`,
    );
  }
}

/** The switch to the new root was asked for with no new root prepared (409). */
export class NoPreparedRootError extends PosternError {
  constructor(phase: 'steady' | 'active') {
    super(
      'POSTERN_NO_PREPARED_ROOT',
      phase === 'active'
        ? 'the new root signs already (phase active)'
        : 'no root rotation is under way; start one first',
    );
  }
}

/** The old root was to leave the bundle while certificates it signed may still be valid. */
export class RootStillNeededError extends PosternError {
  constructor(retireAtMs: number) {
    super(
      'POSTERN_ROOT_STILL_NEEDED',
      `certificates of the old root may be valid until ${new Date(retireAtMs).toISOString()}; it stays in the bundle until then`,
    );
  }
}

/** The bundle peers trust in `roots`: the signing root first, then the other one during a rotation. */
export function trustedPems<R extends Root>(roots: Roots<R>): string[] {
  switch (roots.phase) {
    case 'steady':
      return [roots.signing.certPem];
    case 'prepared':
      return [roots.signing.certPem, roots.next.certPem];
    case 'active':
      return [roots.signing.certPem, roots.retiring];
  }
}

/** steady → prepared: `next` joins the bundle; the signing root stays. */
export function prepare<R extends Root>(
  roots: Roots<R>,
  next: R,
  nowMs: number,
  propagationMs: number,
): Prepared<R> {
  if (roots.phase !== 'steady') throw new RotationInProgressError(roots.phase);
  return { phase: 'prepared', signing: roots.signing, next, startedAtMs: nowMs, propagationMs };
}

/**
 * prepared → active: the new root signs from `nowMs`. The old root signed
 * its last certificate no later than now, each for at most
 * `leafLifetimeMs`, so none is valid after now + `leafLifetimeMs`.
 */
export function activate<R extends Root>(
  roots: Roots<R>,
  nowMs: number,
  leafLifetimeMs: number,
): Active<R> {
  if (roots.phase !== 'prepared') throw new NoPreparedRootError(roots.phase);
  return {
    phase: 'active',
    signing: roots.next,
    retiring: roots.signing.certPem,
    startedAtMs: roots.startedAtMs,
    activatedAtMs: nowMs,
    retireAtMs: nowMs + leafLifetimeMs,
  };
}

/** active → steady: the old root leaves the bundle, once nothing it signed can be valid. */
export function retire<R extends Root>(roots: Active<R>, nowMs: number): Steady<R> {
  if (nowMs < roots.retireAtMs) throw new RootStillNeededError(roots.retireAtMs);
  return { phase: 'steady', signing: roots.signing };
}

/**
 * When a prepared root may start signing: `propagationMs` after the rotation
 * began, and as long after `watchingSinceMs`, when this control plane began
 * to see sidecars' acks. Until then the set of connected sidecars may be
 * incomplete: after a restart they come back over several seconds, and one
 * whose stream died quietly reconnects only after its idle timeout.
 */
export function activatesNoSoonerThan<R extends Root>(
  roots: Prepared<R>,
  watchingSinceMs: number,
): number {
  return Math.max(roots.startedAtMs, watchingSinceMs) + roots.propagationMs;
}

export type NextStep =
  | { readonly step: 'none' }
  | { readonly step: 'activate' }
  | { readonly step: 'retire' }
  /** Nothing yet; look again at `untilMs`, or when sidecars' acks change when it is absent. */
  | { readonly step: 'wait'; readonly untilMs?: number };

export interface RotationFacts {
  readonly nowMs: number;
  readonly watchingSinceMs: number;
  /** Sidecars holding a snapshot watch that have not confirmed trusting the current bundle. */
  readonly unconfirmed: number;
}

/**
 * What the rotation does next by itself. The new root signs once every
 * connected sidecar has confirmed the bundle that carries it and the
 * propagation time has passed; the old root leaves when its last certificate
 * has expired.
 */
export function nextStep<R extends Root>(roots: Roots<R>, facts: RotationFacts): NextStep {
  switch (roots.phase) {
    case 'steady':
      return { step: 'none' };
    case 'prepared': {
      const from = activatesNoSoonerThan(roots, facts.watchingSinceMs);
      if (facts.nowMs < from) return { step: 'wait', untilMs: from };
      return facts.unconfirmed === 0 ? { step: 'activate' } : { step: 'wait' };
    }
    case 'active':
      return facts.nowMs < roots.retireAtMs
        ? { step: 'wait', untilMs: roots.retireAtMs }
        : { step: 'retire' };
  }
}
