import type { Server, Socket } from 'node:net';

/** Every TLS connection opens with a handshake record, content type 22 (RFC 8446 5.1). */
const TLS_HANDSHAKE_RECORD = 0x16;

/**
 * Hands each connection `front` accepts to `tls` or, when its first byte is
 * not a TLS handshake record, to `plaintext` (Istio's protocol sniffing, for
 * mTLS PERMISSIVE on one port). The byte is read and put back, so the
 * server that takes the connection sees it from its start. A connection
 * that sends nothing within `firstByteTimeoutMs` is closed: it would
 * otherwise hold a socket without reaching either server's timeouts.
 * Costs one read per connection, nothing per request.
 */
export function routeByFirstByte(
  front: Server,
  tls: Server,
  plaintext: Server,
  firstByteTimeoutMs: number,
): void {
  // An HTTP server enforces its headers and request timeouts from a timer
  // it starts on 'listening'. These two never listen (the front does), so
  // without this a client could trickle its request head for ever: they
  // start with the front, and stop with it.
  front.once('listening', () => {
    tls.emit('listening');
    plaintext.emit('listening');
  });
  front.once('close', () => {
    tls.close();
    plaintext.close();
  });
  front.on('connection', (socket: Socket) => {
    // Until a server owns the socket, a reset must not become an unhandled 'error'.
    socket.on('error', () => socket.destroy());
    const timer = setTimeout(() => socket.destroy(), firstByteTimeoutMs);
    socket.once('close', () => clearTimeout(timer));
    socket.once('data', (chunk: Buffer) => {
      clearTimeout(timer);
      socket.pause();
      socket.unshift(chunk);
      if (chunk[0] === TLS_HANDSHAKE_RECORD) {
        // Left paused: the TLS socket reads the bytes put back itself, then
        // takes the handle over. Resumed here, they would flow out as
        // 'data' that no one listens to, and the ClientHello would be lost.
        tls.emit('connection', socket);
      } else {
        // The HTTP server reads through 'data' events, which need a flowing socket.
        plaintext.emit('connection', socket);
        socket.resume();
      }
    });
  });
}
