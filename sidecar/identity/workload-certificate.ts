import { X509Certificate } from 'node:crypto';
import { readFile } from 'node:fs/promises';
import { createCsr } from '../../certs/csr.ts';
import { backoffDelay, sleep } from '../../common/backoff.ts';
import { ControlPlaneError } from '../../common/errors.ts';
import type { Logger } from '../../common/log.ts';
import type { ControlPlaneClient } from '../control-plane-client.ts';
import type { Svid } from './svid.ts';

export interface WorkloadCertificateOptions {
  readonly client: ControlPlaneClient;
  readonly spiffeId: string;
  /** File holding the bootstrap token, read when the first certificate is requested. */
  readonly tokenFile: string;
  readonly logger: Logger;
  /**
   * Called with every SVID after the first (the first is returned by
   * `obtain`): a renewed certificate, or the current one with a new trust
   * bundle.
   */
  readonly onRotated: (svid: Svid) => void;
  readonly now?: () => number;
}

/**
 * The sidecar's X.509-SVID. The key pair is made in memory for every
 * request and never written anywhere; the first certificate is bought with
 * the bootstrap token, renewals with the current SVID, each at half of the
 * current certificate's lifetime. Failures retry with backoff while the
 * current certificate is still valid.
 */
export class WorkloadCertificate {
  readonly #options: WorkloadCertificateOptions;
  readonly #abort = new AbortController();
  #current: Svid | undefined;
  #timer: NodeJS.Timeout | undefined;
  /** The control plane refused a renewal by SVID: try the bootstrap token next. */
  #svidRefused = false;
  /** The trust bundle of the last snapshot that carried one (see `setTrustBundle`). */
  #trustBundle: string | undefined;

  constructor(options: WorkloadCertificateOptions) {
    this.#options = options;
  }

  get current(): Svid | undefined {
    return this.#current;
  }

  /** Whether the current certificate has run out (peers will refuse it). */
  expired(): boolean {
    return (
      this.#current !== undefined && (this.#options.now ?? Date.now)() >= this.#current.notAfterMs
    );
  }

  async #request(useToken: boolean): Promise<Svid> {
    const { keyPem, csrPem } = await createCsr(this.#options.spiffeId);
    const token = useToken ? (await readFile(this.#options.tokenFile, 'utf8')).trim() : undefined;
    const response = await this.#options.client.requestCertificate({
      csr: csrPem,
      ...(token ? { token } : {}),
    });
    const leaf = new X509Certificate(response.certificateChain);
    return Object.freeze({
      spiffeId: response.spiffeId,
      certPem: response.certificateChain,
      keyPem,
      bundlePem: this.#trustBundle ?? response.trustBundle,
      notBeforeMs: Date.parse(leaf.validFrom),
      notAfterMs: Date.parse(leaf.validTo),
    });
  }

  /** Gets the first certificate, retrying until it succeeds or `close()` is called. */
  async obtain(): Promise<Svid | undefined> {
    for (let attempt = 0; !this.#abort.signal.aborted; attempt++) {
      try {
        const svid = await this.#request(true);
        this.#install(svid);
        return svid;
      } catch (error) {
        const delay = backoffDelay(attempt, { baseMs: 200, maxMs: 15_000 });
        this.#options.logger.warn('certificate request failed; retrying', {
          error,
          retryInMs: delay,
        });
        await sleep(delay, this.#abort.signal);
      }
    }
    return undefined;
  }

  #install(svid: Svid): void {
    this.#current = svid;
    this.#options.client.useCertificate(svid);
    // Half of the lifetime left from now, not from notBefore: certificates
    // are back-dated for clock skew, which would otherwise pull renewal of a
    // short-lived certificate forward to "immediately", over and over.
    const now = (this.#options.now ?? Date.now)();
    const renewAt = now + (svid.notAfterMs - now) / 2;
    this.#schedule(Math.max(0, renewAt - now), 0);
    this.#options.logger.info('certificate installed', {
      spiffeId: svid.spiffeId,
      notAfter: new Date(svid.notAfterMs).toISOString(),
      renewAt: new Date(renewAt).toISOString(),
    });
  }

  #schedule(delayMs: number, attempt: number): void {
    clearTimeout(this.#timer);
    // setTimeout holds 32-bit delays; longer waits re-arm on the way.
    this.#timer = setTimeout(() => void this.#renew(attempt), Math.min(delayMs, 2 ** 31 - 1));
    this.#timer.unref();
  }

  /**
   * Renewal authenticates with the current SVID. Once that has expired (a
   * control-plane outage longer than half a lifetime), or the control plane
   * no longer accepts it, the sidecar falls back to its bootstrap token, as
   * on first start; a revoked identity has neither and stays without one.
   */
  async #renew(attempt: number): Promise<void> {
    if (this.#abort.signal.aborted) return;
    const now = (this.#options.now ?? Date.now)();
    const useToken = this.#svidRefused || !this.#current || now >= this.#current.notAfterMs;
    try {
      const svid = await this.#request(useToken);
      this.#svidRefused = false;
      this.#install(svid);
      this.#options.onRotated(svid);
    } catch (error) {
      if (error instanceof ControlPlaneError && error.status === 401) this.#svidRefused = !useToken;
      // Past expiry the sidecar serves nothing, so it retries more eagerly.
      const delay = backoffDelay(attempt, { baseMs: 500, maxMs: this.expired() ? 5_000 : 30_000 });
      this.#options.logger.error('certificate renewal failed; retrying', {
        error,
        retryInMs: delay,
      });
      this.#schedule(delay, attempt + 1);
    }
  }

  /**
   * The roots to verify peers with from now on: a snapshot's trust bundle
   * (a root rotation adds and removes roots). It outranks the bundle of any
   * later certificate response: the two come over different connections,
   * and a response issued just before a rotation step can arrive after the
   * snapshot that announced it. The SVID keeps its certificate and key.
   */
  setTrustBundle(bundlePem: string): void {
    this.#trustBundle = bundlePem;
    const current = this.#current;
    if (!current || current.bundlePem === bundlePem) return;
    this.#current = Object.freeze({ ...current, bundlePem });
    this.#options.client.useCertificate(this.#current);
    this.#options.onRotated(this.#current);
    this.#options.logger.info('trust bundle installed', { spiffeId: current.spiffeId });
  }

  close(): void {
    this.#abort.abort();
    clearTimeout(this.#timer);
  }
}
