import type {
  IncomingHttpHeaders,
  IncomingMessage,
  OutgoingHttpHeaders,
  ServerResponse,
} from 'node:http';
import { type Readable, Transform } from 'node:stream';
import { type Dispatcher, errors } from 'undici';
import { PeerCertificateError } from '../../certs/peer-identity.ts';
import { PosternError } from '../../common/errors.ts';
import { socketDraining } from '../../common/listen.ts';
import { TOO_LARGE } from '../filters/request-body-limit.ts';
import { downstreamResponseHeaders } from './headers.ts';
import { type LocalReply, sendLocalReply } from './local-reply.ts';

export interface ForwardResult {
  readonly status: number;
  /** Response body bytes relayed to the client. */
  readonly responseBytes: number;
  /** Set when the sidecar answered with its own error instead of the upstream's response. */
  readonly failure?: LocalReply;
  /** The response went past `maxResponseBytes`: refused before it started, or cut there. */
  readonly overCap?: 'refused' | 'cut';
  /**
   * With `retryable`: the attempt failed before anything reached the client
   * (no connection, or the upstream answered 503), and `failure` is the
   * reply the client has not been sent: retry, or send it.
   */
  readonly retry?: boolean;
}

export interface ForwardOptions {
  /** [name, value, ...] set on the response on top of the upstream's (replacing its own of those names). */
  readonly responseHeaders?: readonly string[];
  /** At most this many response body bytes reach the client (an exfiltration cap); the rest is cut. */
  readonly maxResponseBytes?: number;
  /** The caller may retry this attempt elsewhere: a failure before any byte is relayed is returned, not replied. */
  readonly retryable?: boolean;
  /** The whole exchange, from asking for a connection to the response relayed, within this (504 before the response starts, cut after). */
  readonly timeoutMs?: number;
  /** The upstream's response headers within this of the request (undici headersTimeout). */
  readonly headersTimeoutMs?: number;
  /** At most this long without a byte of the response body (undici bodyTimeout). */
  readonly idleTimeoutMs?: number;
  /** Names removed from the upstream's response, then [name, value, ...] appended to it (an HTTPRoute's ResponseHeaderModifier add). */
  readonly responseHeadersRemoved?: readonly string[];
  readonly responseHeadersAdded?: readonly string[];
  /** A chunked request body is cut at this many bytes (413); a Content-Length over it was refused before. */
  readonly maxRequestBytes?: number;
}

/** What the client is told when the upstream answered 503 and no retry was made. */
const UPSTREAM_503: LocalReply = {
  status: 503,
  code: 'POSTERN_UPSTREAM_UNAVAILABLE',
  message: 'the upstream answered 503 Service Unavailable',
};

/** What is recorded for a request whose client went away first (nginx's 499); nobody reads it. */
const CLIENT_GONE: LocalReply = {
  status: 499,
  code: 'POSTERN_CLIENT_GONE',
  message: 'the client closed the connection before the response was complete',
};

/** A response longer than the route's cap allows this caller, refused before its first byte. */
const OVER_CAP: LocalReply = {
  status: 403,
  code: 'POSTERN_EXFILTRATION_CAP',
  message: "the response is longer than what is left of this caller's cap on the route",
};

function hasBody(req: IncomingMessage): boolean {
  const length = req.headers['content-length'];
  return req.headers['transfer-encoding'] !== undefined || (length !== undefined && length !== '0');
}

/** The request body as sent upstream: as it is, or counted and cut at `limit` when its length was not declared. */
function bodyOf(req: IncomingMessage, limit: number | undefined): Readable {
  if (limit === undefined || req.headers['content-length'] !== undefined) return req;
  let bytes = 0;
  const counted = new Transform({
    transform(chunk: Buffer, _encoding, done) {
      bytes += chunk.length;
      done(bytes > limit ? new BodyTooLargeError() : null, chunk);
    },
  });
  req.on('error', (error) => counted.destroy(error));
  return req.pipe(counted);
}

// OpenSSL's verification codes as Node reports them (INVALID_PURPOSE: an extendedKeyUsage without serverAuth).
const TLS_FAILURE =
  /^(ERR_TLS_|ERR_SSL_|CERT_|UNABLE_TO_|DEPTH_ZERO|SELF_SIGNED|INVALID_|PATH_LENGTH_|ERROR_IN_CERT_)/;

/** What the downstream client is told when the upstream could not be reached or answered badly. */
export function upstreamFailure(error: unknown): LocalReply {
  // undici wraps connection errors: the reason is the error or its cause.
  const cause = (error as { cause?: unknown }).cause;
  if ([error, cause].some((e) => e instanceof BodyTooLargeError)) return TOO_LARGE;
  // The client left: nothing was wrong upstream (so no endpoint is counted as failing).
  if ([error, cause].some((e) => e instanceof ClientGoneError)) return CLIENT_GONE;
  // Our own refusals of the peer's certificate (sidecar/identity/peer-verification.ts) name their reason.
  const refusal = [error, cause].find((e) => e instanceof PeerCertificateError);
  if (refusal) return { status: 502, code: refusal.code, message: refusal.message };
  const code = String(
    (cause as { code?: unknown } | undefined)?.code ?? (error as { code?: unknown }).code ?? '',
  );
  if (
    code === 'POSTERN_REQUEST_TIMEOUT' ||
    code === 'UND_ERR_HEADERS_TIMEOUT' ||
    code === 'UND_ERR_BODY_TIMEOUT' ||
    code === 'UND_ERR_CONNECT_TIMEOUT'
  ) {
    return {
      status: 504,
      code: 'POSTERN_UPSTREAM_TIMEOUT',
      message: 'the upstream did not answer in time',
    };
  }
  // undici's parser refused the response (a bad header line, a body
  // other than its Content-Length says): the upstream is up but broken,
  // which is a gateway's 502 (Envoy's upstream protocol error), not a 503
  // to retry elsewhere.
  // undici 8.13.1 leaves its parser errors without a code (it looks the
  // number up in a table keyed by name), so they are known by class.
  const parserError = [error, cause].find((e) => e instanceof errors.HTTPParserError);
  if (parserError || code === 'UND_ERR_RES_CONTENT_LENGTH_MISMATCH') {
    return {
      status: 502,
      code: 'POSTERN_UPSTREAM_PROTOCOL_ERROR',
      message: `the upstream's response is not valid HTTP/1.1 (${parserError ? (parserError as Error).message : code})`,
    };
  }
  if (TLS_FAILURE.test(code)) {
    return {
      status: 502,
      code: 'POSTERN_UPSTREAM_TLS',
      message: `the upstream's TLS handshake failed (${code})`,
    };
  }
  return {
    status: 503,
    code: 'POSTERN_UPSTREAM_UNAVAILABLE',
    message: `the upstream is unavailable${code ? ` (${code})` : ''}`,
  };
}

/**
 * Forwards one request through `dispatcher` and relays the response as it
 * arrives, both bodies streamed (never buffered). Resolves with the status
 * the client saw.
 *
 * Built on undici's `dispatch(opts, handler)` rather than `request()`: the
 * handler writes each chunk straight into `res`, so a request costs no
 * response Readable, no pipe, no AbortController/AbortSignal and no promise
 * per stage. Those were half of the sidecar's allocation per request at
 * 1,000 rps (sampling heap profile), and allocation is its GC cost.
 */
const NO_OPTIONS: ForwardOptions = Object.freeze({});

export function forwardRequest(
  dispatcher: Dispatcher,
  req: IncomingMessage,
  res: ServerResponse,
  path: string,
  headers: string[],
  options: ForwardOptions = NO_OPTIONS,
): Promise<ForwardResult> {
  return new Promise((resolve) => {
    dispatcher.dispatch(
      {
        method: req.method as Dispatcher.HttpMethod,
        path,
        headers,
        body: hasBody(req) ? bodyOf(req, options.maxRequestBytes) : null,
        ...(options.headersTimeoutMs === undefined
          ? {}
          : { headersTimeout: options.headersTimeoutMs }),
        ...(options.idleTimeoutMs === undefined ? {} : { bodyTimeout: options.idleTimeoutMs }),
      },
      new ResponseRelay(res, resolve, options),
    );
  });
}

/**
 * Relays one upstream response into `res`, with backpressure both ways: a
 * slow client pauses the upstream read, and a client that goes away aborts
 * the upstream request, so an abandoned slow request does not hold a pooled
 * connection and the app's work. An upstream that fails before answering
 * gets a local reply; one that breaks mid-body cuts the response, so the
 * client never takes a truncated body for a whole one.
 */
class ResponseRelay implements Dispatcher.DispatchHandler {
  readonly #res: ServerResponse;
  readonly #done: (result: ForwardResult) => void;
  readonly #extraHeaders: readonly string[] | undefined;
  readonly #limit: number;
  readonly #retryable: boolean;
  readonly #options: ForwardOptions;
  #deadline: NodeJS.Timeout | undefined;
  #controller: Dispatcher.DispatchController | undefined;
  #status = 0;
  #bytes = 0;
  #overCap: 'refused' | 'cut' | undefined;
  /** The upstream answered 503 to a retryable attempt: aborted, for the caller to retry. */
  #unavailable = false;

  #settled = false;

  constructor(res: ServerResponse, done: (result: ForwardResult) => void, options: ForwardOptions) {
    this.#res = res;
    this.#done = done;
    this.#extraHeaders = options.responseHeaders;
    this.#limit = options.maxResponseBytes ?? Number.POSITIVE_INFINITY;
    this.#retryable = options.retryable ?? false;
    this.#options = options;
    // From the start, so connecting and waiting for a pooled connection count too.
    if (options.timeoutMs !== undefined)
      this.#deadline = setTimeout(() => this.#timedOut(), options.timeoutMs);
    // on, not once: 'close' fires once, and once() would wrap the listener per request.
    res.on('close', this.#onClientClose);
  }

  readonly #onClientClose = () => {
    if (!this.#res.writableFinished) this.#controller?.abort(new ClientGoneError());
  };

  onRequestStart(controller: Dispatcher.DispatchController): void {
    this.#controller = controller;
    // The client left while the request waited for a connection.
    if (this.#res.destroyed) controller.abort(new ClientGoneError());
    if (this.#settled) controller.abort(new RequestTimeoutError());
  }

  /** The route's request timeout passed: abort what is under way, or answer 504 before it even started. */
  #timedOut(): void {
    if (this.#controller) {
      this.#controller.abort(new RequestTimeoutError());
      return;
    }
    const failure = upstreamFailure(new RequestTimeoutError());
    if (!this.#res.headersSent && !this.#res.destroyed)
      sendLocalReply(this.#res, failure, this.#extraHeaders);
    this.#settle({ status: failure.status, responseBytes: 0, failure });
  }

  #settle(result: ForwardResult): void {
    if (this.#settled) return;
    this.#settled = true;
    if (this.#deadline !== undefined) clearTimeout(this.#deadline);
    this.#done(result);
  }

  onResponseStart(
    controller: Dispatcher.DispatchController,
    statusCode: number,
    headers: IncomingHttpHeaders,
  ): void {
    // 1xx: Node's server answers Expect: 100-continue itself; others are not relayed.
    if (statusCode < 200) return;
    if (statusCode === 503 && this.#retryable) {
      this.#unavailable = true;
      controller.abort(new UpstreamUnavailableError());
      return;
    }
    // A response that says it is longer than the cap allows is refused whole, not cut.
    if (Number(headers['content-length'] ?? 0) > this.#limit) {
      this.#overCap = 'refused';
      controller.abort(new OverCapError());
      return;
    }
    this.#status = statusCode;
    const out = downstreamResponseHeaders(headers);
    const extra = this.#extraHeaders;
    if (extra)
      for (let i = 0; i < extra.length; i += 2) {
        const name = extra[i]!;
        // Vary lists what the response depends on: the upstream's and ours (CORS: Origin) both hold.
        out[name] = name === 'vary' && out.vary ? `${out.vary}, ${extra[i + 1]}` : extra[i + 1];
      }
    const removed = this.#options.responseHeadersRemoved;
    if (removed) for (const name of removed) delete out[name];
    const added = this.#options.responseHeadersAdded;
    if (added)
      for (let i = 0; i < added.length; i += 2) appendHeader(out, added[i]!, added[i + 1]!);
    // The listener began draining while this request was in flight: its
    // answer closes the connection, so the client's next request goes to
    // another connection instead of one about to close.
    if (socketDraining(this.#res.socket)) this.#res.shouldKeepAlive = false;
    this.#res.writeHead(statusCode, out);
  }

  onResponseData(controller: Dispatcher.DispatchController, chunk: Buffer): void {
    if (this.#bytes + chunk.length > this.#limit) {
      // The cap is reached mid-stream: relay up to it, then cut the
      // connection, so the client cannot take the part for the whole.
      const allowed = Math.max(0, this.#limit - this.#bytes);
      this.#bytes += allowed;
      this.#overCap = 'cut';
      // Destroyed once what is allowed is on its way, or the client gets none of it.
      this.#res.write(chunk.subarray(0, allowed), () => this.#res.destroy());
      controller.abort(new OverCapError());
      return;
    }
    this.#bytes += chunk.length;
    if (!this.#res.write(chunk)) {
      controller.pause();
      this.#res.once('drain', () => controller.resume());
    }
  }

  onResponseEnd(): void {
    this.#res.end();
    this.#settle({ status: this.#status, responseBytes: this.#bytes });
  }

  onResponseError(_controller: Dispatcher.DispatchController, error: Error): void {
    // Already answered (the request timed out before it started): nothing more to say.
    if (this.#settled) return;
    const res = this.#res;
    const overCap = this.#overCap;
    if (res.headersSent) {
      // Mid-body: cutting the connection is the only honest answer (at the
      // cap, once the allowed part is written: onResponseData does it).
      if (overCap !== 'cut') res.destroy();
      this.#settle({
        status: this.#status,
        responseBytes: this.#bytes,
        ...(overCap ? { overCap } : {}),
      });
      return;
    }
    if (overCap) {
      if (!res.destroyed) sendLocalReply(res, OVER_CAP, this.#extraHeaders);
      this.#settle({ status: OVER_CAP.status, responseBytes: 0, failure: OVER_CAP, overCap });
      return;
    }
    const failure = this.#unavailable ? UPSTREAM_503 : upstreamFailure(error);
    // Unavailable (no connection, or a 503), nothing sent yet: the caller may try elsewhere.
    if (this.#retryable && failure.code === 'POSTERN_UPSTREAM_UNAVAILABLE' && !res.destroyed) {
      this.#settle({ status: failure.status, responseBytes: 0, failure, retry: true });
      return;
    }
    if (!res.destroyed) sendLocalReply(res, failure, this.#extraHeaders);
    this.#settle({ status: failure.status, responseBytes: 0, failure });
  }
}

/** Adds a value beside any the name already has (ResponseHeaderModifier add). */
function appendHeader(headers: OutgoingHttpHeaders, name: string, value: string): void {
  const lower = name.toLowerCase();
  const current = headers[lower];
  if (current === undefined) headers[lower] = value;
  else if (Array.isArray(current)) headers[lower] = [...current, value];
  else headers[lower] = [String(current), value];
}

/** Why a request body stopped: it went past the route's limit. */
class BodyTooLargeError extends PosternError {
  constructor() {
    super(TOO_LARGE.code, TOO_LARGE.message);
  }
}

/** Why an upstream request was aborted: the route's request timeout passed. */
class RequestTimeoutError extends PosternError {
  constructor() {
    super('POSTERN_REQUEST_TIMEOUT', "the request did not complete within the route's timeout");
  }
}

/** Why an upstream request was aborted: it answered 503 and may be retried elsewhere. */
class UpstreamUnavailableError extends PosternError {
  constructor() {
    super('POSTERN_UPSTREAM_UNAVAILABLE', 'the upstream answered 503 Service Unavailable');
  }
}

/** Why an upstream request was aborted: its response went past the caller's cap. */
class OverCapError extends PosternError {
  constructor() {
    super('POSTERN_EXFILTRATION_CAP', "the response went past the caller's cap on the route");
  }
}

/** Why an upstream request was aborted: its client went away. */
class ClientGoneError extends PosternError {
  constructor() {
    super(
      'POSTERN_CLIENT_GONE',
      'the client closed the connection before the response was complete',
    );
  }
}
