import { Agent, request } from 'undici';
import { ControlPlaneError } from '../common/errors.ts';
import { TLS_POLICY } from '../common/tls-policy.ts';
import type { UsageReport } from '../common/usage.ts';
import {
  type CertificateRequest,
  type CertificateResponse,
  formatLabels,
  type SnapshotAck,
} from '../common/wire.ts';
import { type Svid, tlsOptionsOf } from './identity/svid.ts';

/** How long the control plane may take to answer (for the watch: to start the stream). */
const ANSWER_TIMEOUT_MS = 10_000;

export interface Registration {
  readonly workload: string;
  readonly labels: Readonly<Record<string, string>>;
  /** host:port of this sidecar's inbound listener, as peers should dial it; undefined for a gateway, which takes no mesh traffic. */
  readonly address: string | undefined;
}

/**
 * The sidecar's side of the control-plane API. It verifies the control plane
 * against the CA file it was given, and once it holds an SVID also against
 * the mesh trust bundle that came with it: a root rotation announces the new
 * root in that bundle before the control plane's own certificate comes from
 * it. It presents the SVID on every call (that is how renewals, the snapshot
 * watch and acks authenticate).
 */
export class ControlPlaneClient {
  readonly #base: string;
  readonly #ca: string;
  #agent: Agent;

  constructor(baseUrl: string, caPem: string) {
    this.#base = baseUrl.replace(/\/+$/, '');
    this.#ca = caPem;
    this.#agent = new Agent({
      connect: { ca: caPem, ...TLS_POLICY },
      headersTimeout: ANSWER_TIMEOUT_MS,
    });
  }

  /** Present this SVID, and trust its bundle, from now on. Streams already open keep their connection. */
  useCertificate(svid: Svid): void {
    const previous = this.#agent;
    this.#agent = new Agent({
      connect: { ...tlsOptionsOf(svid), ca: [this.#ca, svid.bundlePem], ...TLS_POLICY },
      headersTimeout: ANSWER_TIMEOUT_MS,
    });
    void previous.close();
  }

  /**
   * One API call. Calls other than the stream get a deadline: a connection
   * stranded by a network cut must fail the call, not hang the caller (a
   * hung ack would stall the snapshot watch behind it).
   */
  async #call(
    method: 'GET' | 'POST',
    path: string,
    body?: unknown,
    options: { signal?: AbortSignal; stream?: boolean } = {},
  ) {
    const deadline = AbortSignal.timeout(ANSWER_TIMEOUT_MS);
    const signal = options.stream
      ? options.signal
      : options.signal
        ? AbortSignal.any([options.signal, deadline])
        : deadline;
    let response: Awaited<ReturnType<typeof request>>;
    try {
      response = await request(`${this.#base}${path}`, {
        method,
        dispatcher: this.#agent,
        headers: body === undefined ? {} : { 'content-type': 'application/json' },
        body: body === undefined ? null : JSON.stringify(body),
        signal,
      });
    } catch (error) {
      throw new ControlPlaneError(`${method} ${path} failed: ${(error as Error).message}`, {
        cause: error,
      });
    }
    if (response.statusCode >= 300) {
      const text = await response.body.text();
      let message = text;
      try {
        message = (JSON.parse(text) as { error: { message: string } }).error.message;
      } catch {}
      throw new ControlPlaneError(`${method} ${path} answered ${response.statusCode}: ${message}`, {
        status: response.statusCode,
      });
    }
    return response;
  }

  async requestCertificate(req: CertificateRequest): Promise<CertificateResponse> {
    const response = await this.#call('POST', '/v1/certificates', req);
    return (await response.body.json()) as CertificateResponse;
  }

  /** Opens the snapshot watch and returns its SSE byte stream; aborting `signal` closes it. */
  async watchSnapshots(
    registration: Registration,
    signal: AbortSignal,
  ): Promise<AsyncIterable<Buffer>> {
    const query = new URLSearchParams({
      workload: registration.workload,
      labels: formatLabels(registration.labels),
      ...(registration.address === undefined ? {} : { address: registration.address }),
    });
    const response = await this.#call('GET', `/v1/snapshots?${query}`, undefined, {
      signal,
      stream: true,
    });
    return response.body;
  }

  async ack(ack: SnapshotAck, signal?: AbortSignal): Promise<void> {
    const response = await this.#call('POST', '/v1/acks', ack, signal ? { signal } : {});
    await response.body.dump();
  }

  /** One window's usage report (POST /v1/usage). */
  async reportUsage(report: UsageReport): Promise<void> {
    const response = await this.#call('POST', '/v1/usage', report);
    await response.body.dump();
  }

  async close(): Promise<void> {
    await this.#agent.close();
  }
}
