import { createServer, request as httpRequest, type Server } from 'node:http';
import { request as httpsRequest } from 'node:https';
import { connect } from 'node:net';
import { sendJson } from '../../common/http-json.ts';

/** One of the app's probes as the pod spec had it before injection (control-plane/webhooks/injection.ts): HTTP, or a TCP connect. */
export interface AppProbe {
  readonly port: number;
  /** A tcpSocket probe: the port accepting a connection is the answer. */
  readonly tcp?: boolean;
  readonly path?: string;
  readonly scheme?: 'HTTP' | 'HTTPS';
  readonly httpHeaders?: readonly { readonly name: string; readonly value: string }[];
}

/** The kubelet times a probe out itself (timeoutSeconds, 1 s by default); this only bounds a hung app. */
const PROBE_TIMEOUT_MS = 10_000;

/** Parses POSTERN_APP_PROBES: {"/app-health/<container>/<kind>": {path, port, scheme}}; throws naming what is wrong. */
export function parseAppProbes(text: string): ReadonlyMap<string, AppProbe> {
  const parsed = JSON.parse(text) as Record<string, AppProbe>;
  if (!parsed || typeof parsed !== 'object' || Array.isArray(parsed))
    throw new Error('expected a JSON object of probe paths');
  const probes = new Map<string, AppProbe>();
  for (const [path, probe] of Object.entries(parsed)) {
    if (!path.startsWith('/app-health/'))
      throw new Error(`${path}: probe paths start with /app-health/`);
    if (!Number.isInteger(probe?.port) || (!probe.tcp && typeof probe.path !== 'string'))
      throw new Error(`${path}: expected { path, port, scheme } or { tcp: true, port }`);
    probes.set(path, Object.freeze({ ...probe }));
  }
  return probes;
}

/**
 * The status listener (15021, on every address of the pod): what the kubelet asks.
 * `/healthz/ready` is the sidecar's own readiness; `/app-health/...` runs
 * one of the app's original HTTP probes against the app on loopback and
 * answers with its status. The kubelet cannot reach the app's port itself
 * once inbound traffic goes through the sidecar under STRICT mTLS (the
 * injection rewrote the probes to come here, as Istio's do). Nothing else
 * is served: /config and the rest stay on the loopback admin port.
 */
export function createStatusServer(
  notReadyBecause: () => string[],
  probes: ReadonlyMap<string, AppProbe>,
): Server {
  return createServer((req, res) => {
    const path = (req.url ?? '/').split('?')[0]!;
    if (path === '/healthz/ready') {
      const missing = notReadyBecause();
      sendJson(res, missing.length ? 503 : 200, { ready: missing.length === 0, missing });
      return;
    }
    const probe = probes.get(path);
    if (!probe) {
      sendJson(res, 404, {
        error: { code: 'POSTERN_NOT_FOUND', message: `no status endpoint ${path}` },
      });
      return;
    }
    if (probe.tcp) {
      const socket = connect({ host: '127.0.0.1', port: probe.port, timeout: PROBE_TIMEOUT_MS });
      const answer = (status: number, text: string) => {
        socket.destroy();
        if (!res.headersSent)
          res.writeHead(status, { 'content-type': 'text/plain' }).end(`${text}\n`);
      };
      socket.once('connect', () => answer(200, 'app accepted the connection'));
      socket.once('timeout', () => answer(503, 'the app did not accept the connection in time'));
      socket.once('error', (error) =>
        answer(503, `the app refused the connection: ${error.message}`),
      );
      return;
    }
    const send = probe.scheme === 'HTTPS' ? httpsRequest : httpRequest;
    const headers: Record<string, string> = { 'user-agent': 'kube-probe (via postern)' };
    // As the kubelet: httpHeaders win, a Host among them too.
    for (const { name, value } of probe.httpHeaders ?? []) headers[name.toLowerCase()] = value;
    const outgoing = send(
      {
        host: '127.0.0.1',
        port: probe.port,
        path: probe.path,
        headers,
        timeout: PROBE_TIMEOUT_MS,
        // The kubelet does not verify an HTTPS probe's certificate either.
        rejectUnauthorized: false,
      },
      (answer) => {
        answer.resume();
        answer.on('end', () => {
          res.writeHead(answer.statusCode ?? 502, { 'content-type': 'text/plain' });
          res.end(`app answered ${answer.statusCode}\n`);
        });
      },
    );
    outgoing.on('timeout', () =>
      outgoing.destroy(new Error('the app did not answer the probe in time')),
    );
    outgoing.on('error', (error) => {
      if (res.headersSent) return;
      sendJson(res, 503, {
        error: {
          code: 'POSTERN_APP_PROBE_FAILED',
          message: `the app's probe failed: ${error.message}`,
        },
      });
    });
    outgoing.end();
  });
}
