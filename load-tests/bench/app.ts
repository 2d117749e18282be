/**
 * The app every target fronts: answers any GET with a body of
 * BENCH_RESPONSE_BYTES (default 1 KiB), keep-alive, nothing else, so that
 * what the harness measures on top of it is the proxy.
 *
 *   node app.ts PORT
 */
import { createServer } from 'node:http';

const body = Buffer.alloc(Number(process.env.BENCH_RESPONSE_BYTES ?? 1024), 'x');
const server = createServer((req, res) => {
  req.resume();
  req.on('end', () => {
    res.writeHead(200, { 'content-type': 'text/plain', 'content-length': body.length });
    res.end(body);
  });
});
server.keepAliveTimeout = 60_000;
server.listen(Number(process.argv[2]), '127.0.0.1', () => process.stdout.write('listening\n'));
