/**
 * A stand-in for the Kubernetes API server over real HTTPS (none runs
 * here): `handle` answers each request as the API would, with the API's
 * wire format; every request is recorded with its body. The client side is
 * the real @kubernetes/client-node, configured by the KubeConfig returned.
 */
import type { IncomingMessage, ServerResponse } from 'node:http';
import { createServer } from 'node:https';
import type { AddressInfo } from 'node:net';
import { KubeConfig } from '@kubernetes/client-node';
import { CertificateAuthority } from '../certs/authority.ts';
import { generateKeyPair, privateKeyToPem } from '../certs/x509.ts';

export interface RecordedRequest {
  readonly method: string;
  readonly path: string;
  /** The query string's parameters (watch=true, resourceVersion, ...). */
  readonly query: URLSearchParams;
  readonly contentType: string | undefined;
  readonly body: unknown;
}

/** A serving certificate for localhost/127.0.0.1 from a CA of its own: what a fake API server presents. */
export async function apiServerTls(): Promise<{ cert: string; key: string; caPem: string }> {
  const ca = await CertificateAuthority.create('cluster.local');
  const keys = await generateKeyPair();
  const cert = await ca.issue(keys.publicKey, {
    uris: [],
    dnsNames: ['localhost'],
    ipAddresses: ['127.0.0.1'],
    ttlMs: 3600_000,
  });
  return { cert, key: privateKeyToPem(keys.privateKey), caPem: ca.bundlePem };
}

/** A kubeconfig for the fake at `port`, trusting `caPem`, with a service-account token as the control plane has. */
export function fakeKubeConfig(port: number, caPem: string): KubeConfig {
  const kubeConfig = new KubeConfig();
  kubeConfig.loadFromOptions({
    clusters: [
      {
        name: 'fake',
        server: `https://127.0.0.1:${port}`,
        caData: Buffer.from(caPem).toString('base64'),
      },
    ],
    users: [{ name: 'control-plane', token: 'service-account-token' }],
    contexts: [{ name: 'fake', cluster: 'fake', user: 'control-plane' }],
    currentContext: 'fake',
  });
  return kubeConfig;
}

export async function startFakeKubernetesApi(
  t: { teardown(fn: () => unknown): void },
  handle: (req: RecordedRequest, res: ServerResponse) => void,
): Promise<{ kubeConfig: KubeConfig; requests: RecordedRequest[] }> {
  const tls = await apiServerTls();
  const requests: RecordedRequest[] = [];
  const server = createServer(
    { cert: tls.cert, key: tls.key },
    (req: IncomingMessage, res: ServerResponse) => {
      let text = '';
      req.on('data', (chunk) => {
        text += chunk;
      });
      req.on('end', () => {
        const url = new URL(req.url ?? '/', 'https://api');
        const recorded = {
          method: req.method ?? '',
          path: url.pathname,
          query: url.searchParams,
          contentType: req.headers['content-type'],
          body: text ? JSON.parse(text) : undefined,
        };
        requests.push(recorded);
        handle(recorded, res);
      });
    },
  );
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  t.teardown(() => {
    server.closeAllConnections();
    return new Promise((resolve) => server.close(resolve));
  });
  const kubeConfig = fakeKubeConfig((server.address() as AddressInfo).port, tls.caPem);
  return { kubeConfig, requests };
}

export function sendJson(res: ServerResponse, status: number, body: unknown): void {
  res.writeHead(status, { 'content-type': 'application/json' });
  res.end(JSON.stringify(body));
}
