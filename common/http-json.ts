import type { IncomingMessage, ServerResponse } from 'node:http';
import { PosternError } from './errors.ts';

/** A request body that is too large or not JSON. */
export class BadRequestBodyError extends PosternError {
  readonly status: number;
  constructor(status: number, message: string) {
    super('POSTERN_BAD_BODY', message);
    this.status = status;
  }
}

/**
 * Reads and parses a JSON body of at most `limit` bytes. Past the limit it
 * stops reading without destroying the request, so the caller can still
 * answer 413 (with `connection: close`, which ends the upload).
 */
export function readJsonBody(req: IncomingMessage, limit = 64 * 1024): Promise<unknown> {
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = [];
    let size = 0;
    const onData = (chunk: Buffer) => {
      size += chunk.length;
      if (size <= limit) {
        chunks.push(chunk);
        return;
      }
      req.off('data', onData);
      req.off('end', onEnd);
      req.pause();
      reject(new BadRequestBodyError(413, `the body is larger than ${limit} bytes`));
    };
    const onEnd = () => {
      try {
        resolve(JSON.parse(Buffer.concat(chunks).toString('utf8')));
      } catch {
        reject(new BadRequestBodyError(400, 'the body is not valid JSON'));
      }
    };
    req.on('data', onData);
    req.once('end', onEnd);
    req.once('error', reject);
  });
}

export function sendJson(
  res: ServerResponse,
  status: number,
  body: unknown,
  headers: Record<string, string> = {},
): void {
  const text = JSON.stringify(body);
  res.writeHead(status, {
    'content-type': 'application/json',
    'content-length': Buffer.byteLength(text),
    ...headers,
  });
  res.end(text);
}

/** Error bodies everywhere share one shape: `{ error: { code, message } }`. */
export function sendError(
  res: ServerResponse,
  status: number,
  code: string,
  message: string,
): void {
  sendJson(res, status, { error: { code, message } });
}
