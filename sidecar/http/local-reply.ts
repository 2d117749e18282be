import type { ServerResponse } from 'node:http';
import type { Duplex } from 'node:stream';

/** A response the sidecar makes itself instead of forwarding (a denial, a malformed request, an upstream failure). */
export interface LocalReply {
  readonly status: number;
  /** Stable machine-readable code, e.g. POSTERN_DENIED. */
  readonly code: string;
  readonly message: string;
  /** Extra JSON fields (which policy and rule denied). */
  readonly details?: Readonly<Record<string, unknown>>;
  /** Close the connection after replying: after a malformed request the stream cannot be trusted. */
  readonly close?: boolean;
  /** Response headers the reply needs (WWW-Authenticate on a 401). */
  readonly headers?: Readonly<Record<string, string>>;
}

function body(reply: LocalReply): string {
  return JSON.stringify({ error: { code: reply.code, message: reply.message, ...reply.details } });
}

/**
 * Sends the reply; `extra` ([name, value, ...]) are response headers the
 * request had earned before a later step refused it (a CORS origin's, so a
 * browser can read the 401 or 429).
 */
export function sendLocalReply(
  res: ServerResponse,
  reply: LocalReply,
  extra?: readonly string[],
): void {
  if (extra) for (let i = 0; i < extra.length; i += 2) res.setHeader(extra[i]!, extra[i + 1]!);
  if (reply.status === 204) {
    // No content means no body (a CORS preflight's answer is all headers).
    res.writeHead(204, reply.headers);
    res.end();
    return;
  }
  const text = body(reply);
  res.shouldKeepAlive = res.shouldKeepAlive && !reply.close;
  res.writeHead(reply.status, {
    ...reply.headers,
    'content-type': 'application/json',
    'content-length': Buffer.byteLength(text),
    ...(reply.close ? { connection: 'close' } : {}),
  });
  res.end(text);
}

/** The same reply written raw on a socket whose request asked to Upgrade (no ServerResponse exists there). */
export function writeLocalReplyToSocket(socket: Duplex, reply: LocalReply): void {
  const text = body(reply);
  let extra = '';
  for (const [name, value] of Object.entries(reply.headers ?? {})) extra += `${name}: ${value}\r\n`;
  socket.end(
    `HTTP/1.1 ${reply.status} ${reply.code}\r\n${extra}content-type: application/json\r\ncontent-length: ${Buffer.byteLength(text)}\r\nconnection: close\r\n\r\n${text}`,
  );
}
