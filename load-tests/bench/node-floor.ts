/**
 * The Node floor: the least a Node mTLS proxy can do, measured beside Postern
 * so that each budget line shows what Node itself costs on it. node:https
 * with a client certificate required and verified against the mesh CA, TLS
 * 1.2+, Node's default keep-alive; every request dispatched to the app
 * through an undici Pool and the response written straight into the
 * ServerResponse, with backpressure. It applies the sidecar's V8 settings and
 * contains no Postern: no policy, no header rewriting (headers pass as they
 * came), no metrics, no logging.
 *
 *   node node-floor.ts SERVER_CERT_DIR PORT APP_PORT
 *
 * SERVER_CERT_DIR holds cert.pem, key.pem and bundle.pem (the mesh CA).
 */
import { readFileSync } from 'node:fs';
import type { IncomingHttpHeaders, ServerResponse } from 'node:http';
import { createServer } from 'node:https';
import { type Dispatcher, Pool } from 'undici';
import { applyDataPlaneV8Settings } from '../../common/v8-settings.ts';

/**
 * The relay technique of the sidecar's forward.ts, minus everything that is
 * Postern's: a slow client pauses the upstream read, a client that leaves
 * aborts the upstream request (any proxy must, or it leaks pooled
 * connections), an upstream failure is a bare 502 or a cut connection.
 */
class Relay implements Dispatcher.DispatchHandler {
  readonly #res: ServerResponse;
  #controller: Dispatcher.DispatchController | undefined;

  constructor(res: ServerResponse) {
    this.#res = res;
    res.once('close', this.#onClientClose);
  }

  readonly #onClientClose = () => {
    if (!this.#res.writableFinished) this.#controller?.abort(new Error('client gone'));
  };

  readonly #onDrain = () => this.#controller?.resume();

  onRequestStart(controller: Dispatcher.DispatchController): void {
    this.#controller = controller;
    if (this.#res.destroyed) controller.abort(new Error('client gone'));
  }

  onResponseStart(
    _controller: Dispatcher.DispatchController,
    statusCode: number,
    headers: IncomingHttpHeaders,
  ): void {
    // 1xx: Node's server answers Expect: 100-continue itself.
    if (statusCode >= 200) this.#res.writeHead(statusCode, headers);
  }

  onResponseData(controller: Dispatcher.DispatchController, chunk: Buffer): void {
    if (!this.#res.write(chunk)) {
      controller.pause();
      this.#res.once('drain', this.#onDrain);
    }
  }

  onResponseEnd(): void {
    this.#res.end();
  }

  onResponseError(_controller: Dispatcher.DispatchController, _error: Error): void {
    const res = this.#res;
    if (res.headersSent) res.destroy();
    else if (!res.destroyed) res.writeHead(502, { 'content-length': 0 }).end();
  }
}

// Before the first request: the floor measures Node with the sidecar's settings.
applyDataPlaneV8Settings();
const [certDir, port, appPort] = process.argv.slice(2) as [string, string, string];
const pem = (name: string) => readFileSync(`${certDir}/${name}`);
// The sidecar's pool to the app, so the two differ by Postern alone.
const pool = new Pool(`http://127.0.0.1:${appPort}`, { connections: 128, pipelining: 1 });
const server = createServer(
  {
    cert: pem('cert.pem'),
    key: pem('key.pem'),
    ca: pem('bundle.pem'),
    minVersion: 'TLSv1.2',
    requestCert: true,
    rejectUnauthorized: true,
  },
  (req, res) => {
    // A body streams through under its content-length. A chunked one would need
    // the hop-by-hop header handling left out here (undici refuses a forwarded
    // transfer-encoding); the bench sends GETs.
    const length = req.headers['content-length'];
    pool.dispatch(
      {
        method: req.method as Dispatcher.HttpMethod,
        path: req.url!,
        headers: req.rawHeaders,
        body: length && length !== '0' ? req : null,
      },
      new Relay(res),
    );
  },
);
server.listen(Number(port), '127.0.0.1', () => process.stdout.write('listening\n'));
