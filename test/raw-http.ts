/**
 * Raw HTTP/1.1 exchanges for tests that must send what no client library
 * would (smuggling shapes, bad framing, spoofed headers): the bytes go out
 * as written, and everything the server sends comes back as text.
 */
import type { IncomingHttpHeaders } from 'node:http';
import { connect as connectTcp, type Socket } from 'node:net';
import { connect as connectTls } from 'node:tls';
import type { PemCredentials } from './helpers.ts';

export interface Echoed {
  readonly url: string;
  readonly headers: IncomingHttpHeaders;
  readonly body: string;
}

/** A server that has not closed the connection after this long is not going to. */
export const CLOSE_WAIT_MS = 5000;
export const STILL_OPEN = '\n[the server left the connection open]';

/**
 * Writes `text` as is and resolves with everything received once the server
 * closes; a connection still open after CLOSE_WAIT_MS ends with STILL_OPEN.
 */
export function collectUntilClosed(socket: Socket, text: string, event: string): Promise<string> {
  return new Promise((resolve) => {
    let received = '';
    const timer = setTimeout(() => {
      received += STILL_OPEN;
      socket.destroy();
    }, CLOSE_WAIT_MS);
    socket.once(event, () => socket.write(text));
    socket.on('data', (chunk) => {
      received += chunk;
    });
    socket.on('error', () => {});
    socket.on('close', () => {
      clearTimeout(timer);
      resolve(received);
    });
  });
}

/** One raw exchange over mTLS with the inbound listener. */
export function mtlsExchange(
  port: number,
  credentials: PemCredentials,
  text: string,
): Promise<string> {
  const socket = connectTls({
    host: '127.0.0.1',
    port,
    ...credentials,
    checkServerIdentity: () => undefined,
  });
  return collectUntilClosed(socket, text, 'secureConnect');
}

/** One raw exchange over plain TCP with the outbound listener. */
export function tcpExchange(port: number, text: string): Promise<string> {
  return collectUntilClosed(connectTcp(port, '127.0.0.1'), text, 'connect');
}

/** The JSON body of a raw HTTP/1.1 response the echo app wrote (chunked: it sets no length). */
export function echoedBody(raw: string): Echoed {
  let rest = raw.slice(raw.indexOf('\r\n\r\n') + 4);
  let body = '';
  for (;;) {
    const eol = rest.indexOf('\r\n');
    const size = Number.parseInt(rest.slice(0, eol), 16);
    if (!size) break;
    body += rest.slice(eol + 2, eol + 2 + size);
    rest = rest.slice(eol + 2 + size + 2);
  }
  return JSON.parse(body) as Echoed;
}
