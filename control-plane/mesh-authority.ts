import { CertificateAuthority, type LeafRequest } from '../certs/authority.ts';
import type { x509 } from '../certs/x509.ts';
import {
  type Active,
  activate,
  type Prepared,
  prepare,
  type Roots,
  retire,
} from './root-phases.ts';
import { loadRoots, saveRoots, signingWithBundle } from './root-store.ts';

/** What changed in a rotation step, for those who act on it. */
export interface RootChange {
  /** Another root signs from now on (the control plane's own certificate must follow). */
  readonly signerChanged: boolean;
}

/**
 * The mesh CA as the control plane runs it: one root signs, a bundle of one
 * or two is trusted, and rotation steps move between the phases of
 * root-phases.ts. Every step is written to the CA folder before it takes
 * effect, one step at a time, so a restart resumes where the rotation was;
 * certificates wait for a step being written and are then signed by the
 * root of the phase it leads to.
 */
export class MeshAuthority {
  readonly #dir: string;
  readonly #now: () => number;
  readonly #listeners: ((change: RootChange) => void)[] = [];
  #roots: Roots<CertificateAuthority>;
  #current: CertificateAuthority;
  #steps: Promise<unknown> = Promise.resolve();

  private constructor(dir: string, roots: Roots<CertificateAuthority>, now: () => number) {
    this.#dir = dir;
    this.#roots = roots;
    this.#current = signingWithBundle(roots);
    this.#now = now;
  }

  /**
   * Opens the CA folder `dir` (creating a root for `trustDomain` on first
   * start). During a rotation the files derived from its record are written
   * again, which completes a step a crash interrupted; outside one the
   * folder is only read (it may be a read-only mount).
   */
  static async open(
    dir: string,
    trustDomain: string,
    now: () => number = Date.now,
  ): Promise<MeshAuthority> {
    const roots = await loadRoots(dir, trustDomain);
    if (roots.phase !== 'steady') await saveRoots(dir, roots);
    return new MeshAuthority(dir, roots, now);
  }

  get roots(): Roots<CertificateAuthority> {
    return this.#roots;
  }

  /** The root that signs now, with the bundle peers trust now as its `bundlePem`. */
  get current(): CertificateAuthority {
    return this.#current;
  }

  get trustDomain(): string {
    return this.#current.trustDomain;
  }

  /** PEM: every root peers trust now (two during a rotation). */
  get bundlePem(): string {
    return this.#current.bundlePem;
  }

  /** Called after every step, once it is on disk. */
  onChange(listener: (change: RootChange) => void): void {
    this.#listeners.push(listener);
  }

  async issue(publicKey: CryptoKey | x509.PublicKey, request: LeafRequest): Promise<string> {
    const { signer, now } = await this.#signer();
    return signer.issue(publicKey, { now, ...request });
  }

  async signCsr(
    csrPem: string,
    spiffeId: string,
    leaf: Omit<LeafRequest, 'uris'>,
  ): Promise<string> {
    const { signer, now } = await this.#signer();
    return signer.signCsr(csrPem, spiffeId, { now, ...leaf });
  }

  /**
   * The root that signs, and the time the certificate counts from, taken
   * together once no step is being written: a certificate of the old root
   * then never starts later than the switch, so it expires within the old
   * root's last leaf lifetime (see `activate` in root-phases.ts).
   */
  async #signer(): Promise<{ signer: CertificateAuthority; now: Date }> {
    await this.#steps;
    return { signer: this.#current, now: new Date(this.#now()) };
  }

  /** steady → prepared: a new root joins the bundle; it signs nothing yet. */
  startRotation(propagationMs: number): Promise<Prepared<CertificateAuthority>> {
    return this.#step(async (roots) =>
      prepare(
        roots,
        await CertificateAuthority.create(this.trustDomain, new Date(this.#now())),
        this.#now(),
        propagationMs,
      ),
    );
  }

  /** prepared → active: the new root signs; the old one stays trusted for `leafLifetimeMs`. */
  activate(leafLifetimeMs: number): Promise<Active<CertificateAuthority>> {
    return this.#step(async (roots) => activate(roots, this.#now(), leafLifetimeMs));
  }

  /**
   * active → steady: the old root leaves the bundle. A retirement queued
   * behind another step may find the rotation finished already: nothing to do.
   */
  retire(): Promise<Roots<CertificateAuthority>> {
    return this.#step(async (roots) =>
      roots.phase === 'active' ? retire(roots, this.#now()) : roots,
    );
  }

  /** Runs one step after any before it: computed, written, then in force, then announced. */
  #step<T extends Roots<CertificateAuthority>>(
    next: (roots: Roots<CertificateAuthority>) => Promise<T>,
  ): Promise<T> {
    const done = this.#steps.then(async () => {
      const before = this.#roots;
      const after = await next(before);
      if (after === before) return after;
      await saveRoots(this.#dir, after);
      this.#roots = after;
      this.#current = signingWithBundle(after);
      const change = { signerChanged: after.signing !== before.signing };
      for (const listener of this.#listeners) listener(change);
      return after;
    });
    this.#steps = done.catch(() => {});
    return done;
  }
}
