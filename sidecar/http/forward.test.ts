import { once } from 'node:events';
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import { createServer as createNetServer, type Socket } from 'node:net';
import t from 'tap';
import { Pool, request } from 'undici';
import { listen } from '../../common/listen.ts';
import { type ForwardOptions, type ForwardResult, forwardRequest } from './forward.ts';

/** A front server that forwards every request through `pool` with `options`, recording each result. */
async function front(
  t: { teardown(fn: () => unknown): void },
  pool: Pool,
  options: ForwardOptions,
): Promise<{ port: number; results: ForwardResult[] }> {
  const results: ForwardResult[] = [];
  const server: Server = createServer((req: IncomingMessage, res: ServerResponse) => {
    void forwardRequest(pool, req, res, req.url ?? '/', [], options).then((r) => results.push(r));
  });
  const port = await listen(server, 0, '127.0.0.1');
  t.teardown(() => {
    server.closeAllConnections();
    server.close();
  });
  return { port, results };
}

t.test(
  'regression: a request timeout did not cover connecting (a TLS handshake that never ends ran to the pool connect timeout)',
  async (t) => {
    // Accepts TCP and never speaks TLS.
    const sockets: Socket[] = [];
    const silent = createNetServer((socket) => sockets.push(socket));
    const silentPort = await listen(silent, 0, '127.0.0.1');
    t.teardown(() => {
      for (const s of sockets) s.destroy();
      silent.close();
    });
    const pool = new Pool(`https://127.0.0.1:${silentPort}`, { connect: { timeout: 10_000 } });
    t.teardown(() => pool.destroy());
    const { port, results } = await front(t, pool, {
      timeoutMs: 300,
      responseHeaders: ['access-control-allow-origin', 'https://app.example.com'],
    });
    const started = performance.now();
    const response = await request(`http://127.0.0.1:${port}/`);
    const elapsed = performance.now() - started;
    t.equal(response.statusCode, 504);
    t.ok(
      elapsed < 3000,
      `answered at the route's timeout, not the pool's (${elapsed.toFixed(0)} ms)`,
    );
    t.equal(
      response.headers['access-control-allow-origin'],
      'https://app.example.com',
      'regression: an error reply dropped the headers the request had earned (a browser could not read it)',
    );
    t.match(await response.body.json(), { error: { code: 'POSTERN_UPSTREAM_TIMEOUT' } });
    t.equal(results[0]?.status, 504);
  },
);

t.test(
  "regression: the gateway's Vary replaced the upstream's instead of adding to it",
  async (t) => {
    const upstream = createServer((_req, res) => {
      res.writeHead(200, { vary: 'Accept-Encoding' }).end('ok');
    });
    const upstreamPort = await listen(upstream, 0, '127.0.0.1');
    t.teardown(() => upstream.close());
    const pool = new Pool(`http://127.0.0.1:${upstreamPort}`);
    t.teardown(() => pool.close());
    const { port } = await front(t, pool, { responseHeaders: ['vary', 'Origin'] });
    const response = await request(`http://127.0.0.1:${port}/`);
    await response.body.dump();
    t.equal(response.headers.vary, 'Accept-Encoding, Origin');
  },
);

t.test(
  'regression: a client that left was recorded as an upstream failure (503), which ejects healthy endpoints',
  async (t) => {
    const upstream = createServer(() => {}); // never answers
    const upstreamPort = await listen(upstream, 0, '127.0.0.1');
    t.teardown(() => {
      upstream.closeAllConnections();
      upstream.close();
    });
    const pool = new Pool(`http://127.0.0.1:${upstreamPort}`);
    t.teardown(() => pool.destroy());
    const { port, results } = await front(t, pool, {});
    const abort = new AbortController();
    const pending = request(`http://127.0.0.1:${port}/`, { signal: abort.signal }).catch(
      () => undefined,
    );
    await once(upstream, 'request');
    abort.abort();
    await pending;
    await t.resolves(
      (async () => {
        while (!results.length) await new Promise((resolve) => setTimeout(resolve, 10));
      })(),
    );
    t.equal(results[0]!.status, 499, 'recorded as the client gone, not the upstream');
    t.equal(results[0]!.failure?.code, 'POSTERN_CLIENT_GONE');
  },
);
