import { X509Certificate } from 'node:crypto';
import type { CertificateAuthority } from '../certs/authority.ts';
import type { Logger } from '../common/log.ts';
import {
  type RootSummary,
  type RotationStatus,
  trustBundleId,
  type UnconfirmedSidecar,
} from '../common/wire.ts';
import type { MeshAuthority } from './mesh-authority.ts';
import { activatesNoSoonerThan, nextStep, type Roots } from './root-phases.ts';

/** How long a prepared root is announced before it may sign, unless the operator says otherwise. */
export const DEFAULT_PROPAGATION_MS = 5 * 60_000;
/** How often a prepared rotation looks at sidecars' acks while it waits for them. */
const ACK_POLL_MS = 1_000;

export interface RootRotationOptions {
  readonly authority: MeshAuthority;
  /** Open snapshot watches whose sidecar has not confirmed the bundle `bundleId` names. */
  readonly unconfirmed: (bundleId: string) => UnconfirmedSidecar[];
  /** Longest lifetime of a certificate the control plane signs (its SVID lifetime). */
  readonly leafLifetimeMs: number;
  readonly logger: Logger;
  readonly now?: () => number;
}

function summary(role: RootSummary['role'], certPem: string): RootSummary {
  const certificate = new X509Certificate(certPem);
  return {
    role,
    subject: certificate.subject.replaceAll('\n', ', '),
    fingerprint: certificate.fingerprint256,
    notAfter: new Date(certificate.validTo).toISOString(),
  };
}

/**
 * Drives root rotations: an operator starts one (`postern certs rotate`);
 * the switch and the retirement then happen by themselves.
 *
 * The switch from prepared to active needs proof that the new root has
 * reached the sidecars, because from then on peers present certificates it
 * signed (and the control plane's own certificate is one of them). Sidecars
 * name the bundle they verify with in every ack, so the new root signs once
 * every sidecar holding a snapshot watch has acked the bundle that carries
 * it, and no sooner than the propagation time after the rotation began (and
 * after this control plane started), which gives sidecars that were
 * reconnecting at that moment the time to come back and be counted. A
 * sidecar that never confirms (an older version, a stuck one) holds the
 * switch; the status names it, and `postern certs rotate activate` switches
 * anyway. Retirement needs no proof: it waits out the longest certificate
 * lifetime, after which nothing the old root signed is valid.
 */
export class RootRotation {
  readonly #options: RootRotationOptions;
  readonly #now: () => number;
  readonly #watchingSinceMs: number;
  #timer: NodeJS.Timeout | undefined;
  #checking: Promise<void> = Promise.resolve();
  #closed = false;

  constructor(options: RootRotationOptions) {
    this.#options = options;
    this.#now = options.now ?? Date.now;
    this.#watchingSinceMs = this.#now();
  }

  /** Starts a rotation: a new root joins the bundle, to sign once sidecars trust it. */
  async start(propagationMs: number): Promise<RotationStatus> {
    const roots = await this.#options.authority.startRotation(propagationMs);
    this.#options.logger.info('root rotation started: a new root joins the trust bundle', {
      next: summary('next', roots.next.certPem),
      propagationMs,
    });
    await this.check();
    return this.status();
  }

  /** Switches to the new root now, without waiting for sidecars to confirm it. */
  async activate(): Promise<RotationStatus> {
    await this.#activate('by the operator');
    await this.check();
    return this.status();
  }

  /**
   * Takes the step that is due, if any, and arms a timer for the next look.
   * Checks run one at a time; the timer calls this, tests call it with
   * their own clock.
   */
  check(): Promise<void> {
    this.#checking = this.#checking.then(() => this.#check());
    return this.#checking;
  }

  async #check(): Promise<void> {
    clearTimeout(this.#timer);
    if (this.#closed) return;
    const step = nextStep(this.#options.authority.roots, {
      nowMs: this.#now(),
      watchingSinceMs: this.#watchingSinceMs,
      unconfirmed: this.#unconfirmed().length,
    });
    if (step.step === 'none') return;
    if (step.step === 'wait') {
      // Without a time to wait for, it waits for acks: looked at every second.
      this.#recheckIn(step.untilMs === undefined ? ACK_POLL_MS : step.untilMs - this.#now());
      return;
    }
    try {
      if (step.step === 'activate') await this.#activate('every connected sidecar trusts it');
      else await this.#retire();
    } catch (error) {
      this.#options.logger.error('root rotation step failed; trying again', {
        step: step.step,
        error,
      });
      this.#recheckIn(ACK_POLL_MS);
      return;
    }
    await this.#check();
  }

  #recheckIn(delayMs: number): void {
    // setTimeout holds 32-bit delays; longer waits re-arm on the way.
    this.#timer = setTimeout(() => void this.check(), Math.min(Math.max(0, delayMs), 2 ** 31 - 1));
    this.#timer.unref();
  }

  async #activate(why: string): Promise<void> {
    const roots = await this.#options.authority.activate(this.#options.leafLifetimeMs);
    this.#options.logger.info(`root rotation: the new root signs (${why})`, {
      signing: summary('signing', roots.signing.certPem),
      retireAt: new Date(roots.retireAtMs).toISOString(),
    });
  }

  async #retire(): Promise<void> {
    const roots = await this.#options.authority.retire();
    this.#options.logger.info('root rotation finished: the old root left the trust bundle', {
      signing: summary('signing', roots.signing.certPem),
    });
  }

  #unconfirmed(): UnconfirmedSidecar[] {
    return this.#options.unconfirmed(trustBundleId(this.#options.authority.bundlePem));
  }

  status(): RotationStatus {
    const roots: Roots<CertificateAuthority> = this.#options.authority.roots;
    const common = {
      phase: roots.phase,
      trustBundle: trustBundleId(this.#options.authority.bundlePem),
    };
    const iso = (ms: number) => new Date(ms).toISOString();
    switch (roots.phase) {
      case 'steady':
        return { ...common, roots: [summary('signing', roots.signing.certPem)] };
      case 'prepared':
        return {
          ...common,
          roots: [summary('signing', roots.signing.certPem), summary('next', roots.next.certPem)],
          startedAt: iso(roots.startedAtMs),
          activatesNoSoonerThan: iso(activatesNoSoonerThan(roots, this.#watchingSinceMs)),
          waitingFor: this.#unconfirmed(),
        };
      case 'active':
        return {
          ...common,
          roots: [summary('signing', roots.signing.certPem), summary('retiring', roots.retiring)],
          startedAt: iso(roots.startedAtMs),
          activatedAt: iso(roots.activatedAtMs),
          retireAt: iso(roots.retireAtMs),
        };
    }
  }

  close(): void {
    this.#closed = true;
    clearTimeout(this.#timer);
  }
}
