import type { IncomingMessage, ServerResponse } from 'node:http';
import type { Readable } from 'node:stream';
import type { Dispatcher } from 'undici';
import { PeerIdentityMismatchError, PeerRevokedError } from '../identity/peer-verification.ts';
import { downstreamResponseHeaders } from './headers.ts';
import { type LocalReply, sendLocalReply } from './local-reply.ts';

export interface ForwardResult {
  readonly status: number;
  /** Set when the sidecar answered with its own error instead of the upstream's response. */
  readonly failure?: LocalReply;
}

function hasBody(req: IncomingMessage): boolean {
  const length = req.headers['content-length'];
  return req.headers['transfer-encoding'] !== undefined || (length !== undefined && length !== '0');
}

const TLS_FAILURE = /^(ERR_TLS_|ERR_SSL_|CERT_|UNABLE_TO_|DEPTH_ZERO|SELF_SIGNED)/;

/** What the downstream client is told when the upstream could not be reached or answered badly. */
export function upstreamFailure(error: unknown): LocalReply {
  // undici wraps connection errors: the reason is the error or its cause.
  const cause = (error as { cause?: unknown }).cause;
  const mismatch = [error, cause].find(
    (e) => e instanceof PeerIdentityMismatchError || e instanceof PeerRevokedError,
  ) as PeerIdentityMismatchError | PeerRevokedError | undefined;
  if (mismatch) return { status: 502, code: mismatch.code, message: mismatch.message };
  const code = String(
    (cause as { code?: unknown } | undefined)?.code ?? (error as { code?: unknown }).code ?? '',
  );
  if (
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
 * Forwards one request through `dispatcher` and streams the response back,
 * both bodies streamed (never buffered). Returns the status the client saw.
 */
export async function forwardRequest(
  dispatcher: Dispatcher,
  req: IncomingMessage,
  res: ServerResponse,
  path: string,
  headers: string[],
): Promise<ForwardResult> {
  // A client that goes away cancels its upstream request, so an abandoned
  // slow request does not hold a pooled connection and the app's work.
  const abandoned = new AbortController();
  res.once('close', () => {
    if (!res.writableFinished) abandoned.abort();
  });
  let upstream: Dispatcher.ResponseData;
  try {
    upstream = await dispatcher.request({
      method: req.method as Dispatcher.HttpMethod,
      path,
      headers,
      body: hasBody(req) ? req : null,
      signal: abandoned.signal,
    });
  } catch (error) {
    const failure = upstreamFailure(error);
    if (!res.headersSent && !res.destroyed) sendLocalReply(res, failure);
    return { status: failure.status, failure };
  }
  res.writeHead(upstream.statusCode, downstreamResponseHeaders(upstream.headers));
  await streamBody(upstream.body, res);
  return { status: upstream.statusCode };
}

/**
 * Pipes the upstream body into the response (backpressure both ways) and
 * resolves once the response is done or cut. An upstream that breaks
 * mid-body cuts the response; a client that goes away destroys the body.
 * Not `stream.pipeline`: it builds an AbortController per call and aborts
 * it on completion, which constructs a DOMException with a stack trace for
 * every request (a tenth of the sidecar's CPU at 1,000 rps, by profile).
 */
function streamBody(body: Readable, res: ServerResponse): Promise<void> {
  if (res.destroyed) {
    // The client left while the upstream answered: nothing to stream to.
    body.destroy();
    return Promise.resolve();
  }
  return new Promise((resolve) => {
    body.once('error', () => res.destroy());
    res.once('close', () => {
      if (!res.writableFinished) body.destroy();
      resolve();
    });
    body.pipe(res);
  });
}
