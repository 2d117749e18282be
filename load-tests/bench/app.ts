/**
 * The app every target fronts: answers any GET with a body of
 * BENCH_RESPONSE_BYTES (default 1 KiB), or of N bytes when the query says
 * `bytes=N` (the full run varies the response size per request, so that one
 * app serves every point), keep-alive, nothing else, so that what the harness
 * measures on top of it is the proxy.
 *
 *   node app.ts PORT
 */
import { createServer } from 'node:http';

/** The largest body a request may ask for. */
const MAX_BYTES = 16 * 1024 * 1024;
const defaultBody = Buffer.alloc(Number(process.env.BENCH_RESPONSE_BYTES ?? 1024), 'x');
/** Bodies by size, built once each: a bench asks for a few sizes, many times. */
const bodies = new Map<number, Buffer>();

function bodyFor(url: string | undefined): Buffer | undefined {
  const at = url?.indexOf('bytes=') ?? -1;
  if (at < 0) return defaultBody;
  const bytes = Number.parseInt(url!.slice(at + 'bytes='.length), 10);
  if (!Number.isSafeInteger(bytes) || bytes < 0 || bytes > MAX_BYTES) return undefined;
  let body = bodies.get(bytes);
  if (!body) {
    body = Buffer.alloc(bytes, 'x');
    if (bodies.size < 64) bodies.set(bytes, body);
  }
  return body;
}

const server = createServer((req, res) => {
  req.resume();
  req.on('end', () => {
    const body = bodyFor(req.url);
    if (!body) {
      res.writeHead(400, { 'content-length': 0 }).end();
      return;
    }
    res.writeHead(200, { 'content-type': 'text/plain', 'content-length': body.length });
    res.end(body);
  });
});
server.keepAliveTimeout = 60_000;
server.listen(Number(process.argv[2]), '127.0.0.1', () => process.stdout.write('listening\n'));
