import { readFile } from 'node:fs/promises';
import { BlockList } from 'node:net';
import { createSecureContext } from 'node:tls';
import { type ConnectionLimits, INBOUND_LIMITS } from '../../common/connection-limits.ts';
import { ConfigError } from '../../common/errors.ts';
import { FileReloader } from '../../common/file-reloader.ts';
import { Logger } from '../../common/log.ts';
import { parseCidr } from '../../common/policy/cidr.ts';
import { type DataPlaneOptions, startDataPlane } from '../data-plane.ts';
import { GatewayListener, type ServerTls } from '../listeners/gateway.ts';
import { loadConsumers } from './api-key-file.ts';
import type { Consumer } from './consumers.ts';

export interface GatewayOptions extends DataPlaneOptions {
  readonly listenHost: string;
  readonly listenPort: number;
  /** The server certificate outside clients see (PEM chain) and its key; reloaded when either file changes. */
  readonly tlsCertFile: string;
  readonly tlsKeyFile: string;
  /** Roots of partners' client certificates: asked for, optional, verified when presented. */
  readonly clientCaFile?: string;
  /** API-key consumers: a file or a mounted Secret folder (api-keys.ts); reloaded on change. */
  readonly apiKeysFile?: string;
  /** The header keys come in (default x-api-key). */
  readonly apiKeyHeader?: string;
  /** Addresses or CIDRs whose X-Forwarded-For / Forwarded are trusted (a load balancer in front). */
  readonly trustedProxies?: readonly string[];
  /** Request bodies above this get 413 unless an HTTPRoute says otherwise (default 10 MiB). */
  readonly maxRequestBytes?: number;
  readonly limits?: Partial<ConnectionLimits>;
}

export interface Gateway {
  readonly port: number;
  readonly adminPort: number;
  /** A graceful stop: see DataPlane.shutdown. */
  shutdown(graceMs: number): Promise<void>;
  close(): Promise<void>;
}

export const DEFAULT_API_KEY_HEADER = 'x-api-key';
export const DEFAULT_MAX_REQUEST_BYTES = 10 * 1024 * 1024;

function trustedProxyList(entries: readonly string[]): BlockList | undefined {
  if (!entries.length) return undefined;
  const list = new BlockList();
  for (const entry of entries) {
    const cidr = parseCidr(entry);
    if (!cidr)
      throw new ConfigError(
        `--trusted-proxies: ${JSON.stringify(entry)} is not an address or CIDR`,
      );
    list.addSubnet(cidr.address, cidr.prefix, cidr.family);
  }
  return list;
}

/** Reads the certificate and key, and proves they make a TLS context (a key that is not the certificate's fails here, not at a client's handshake). */
async function loadServerTls(
  certFile: string,
  keyFile: string,
): Promise<Pick<ServerTls, 'cert' | 'key'>> {
  const [cert, key] = await Promise.all([readFile(certFile, 'utf8'), readFile(keyFile, 'utf8')]);
  try {
    createSecureContext({ cert, key });
  } catch (error) {
    throw new ConfigError(
      `${certFile} and ${keyFile} are not a certificate and its key: ${(error as Error).message}`,
    );
  }
  return { cert, key };
}

/**
 * Starts `postern gateway`: the data plane (data-plane.ts) with one
 * listener for clients outside the mesh (listeners/gateway.ts). It has a
 * SPIFFE identity like any workload, registers without an address (nothing
 * in the mesh calls it), and its snapshot carries the RoutePolicies that
 * select it and the HTTPRoutes whose parentRefs name it.
 */
export async function startGateway(options: GatewayOptions): Promise<Gateway> {
  const logger = options.logger ?? new Logger('gateway');
  const trustedProxies = trustedProxyList(options.trustedProxies ?? []);
  let listener: GatewayListener | undefined;
  const certificate = new FileReloader({
    paths: [options.tlsCertFile, options.tlsKeyFile],
    load: () => loadServerTls(options.tlsCertFile, options.tlsKeyFile),
    apply: (tls) => listener?.setServerCertificate(tls),
    logger,
    what: 'server certificate',
  });
  let consumers: readonly Consumer[] = [];
  const keys = options.apiKeysFile
    ? new FileReloader({
        paths: [options.apiKeysFile],
        load: () => loadConsumers(options.apiKeysFile!),
        apply: (loaded) => {
          consumers = loaded;
        },
        logger,
        what: 'API-key consumers',
      })
    : undefined;
  const stopReloading = () => {
    certificate.close();
    keys?.close();
  };
  try {
    return await startWith(await certificate.start(), keys ? await keys.start() : []);
  } catch (error) {
    stopReloading();
    throw error;
  }

  async function startWith(
    serverTls: Pick<ServerTls, 'cert' | 'key'>,
    loaded: readonly Consumer[],
  ): Promise<Gateway> {
    consumers = loaded;
    const clientCa = options.clientCaFile
      ? await readFile(options.clientCaFile, 'utf8')
      : undefined;

    const plane = await startDataPlane({ ...options, logger }, 'gateway', async (parts) => {
      const gateway = new GatewayListener({
        ...parts,
        tls: { ...serverTls, ...(clientCa ? { clientCa } : {}) },
        observers: parts.observers('gateway'),
        apiKeyHeader: (options.apiKeyHeader ?? DEFAULT_API_KEY_HEADER).toLowerCase(),
        consumers: () => consumers,
        trustedProxies,
        maxRequestBytes: options.maxRequestBytes ?? DEFAULT_MAX_REQUEST_BYTES,
        limits: { ...INBOUND_LIMITS, ...options.limits },
      });
      listener = gateway;
      const port = await gateway.listen(options.listenPort, options.listenHost);
      return {
        ports: { gatewayPort: port },
        advertise: undefined,
        setCertificate: (svid) => gateway.upstreams.setCertificate(svid),
        retainOnly: (endpoints) => gateway.upstreams.retainOnly(endpoints),
        describeEndpoints: (endpoints) => gateway.upstreams.describe(endpoints),
        // Its clients are outside the mesh: a revocation only ends its connections to backends.
        revoke(_revoked, changed) {
          gateway.upstreams.dropIdentities(changed);
          return 0;
        },
        drain: (graceMs) => gateway.drain(graceMs),
        close: () => gateway.close(),
      };
    });
    return {
      port: plane.ports.gatewayPort!,
      adminPort: plane.adminPort,
      shutdown: async (graceMs) => {
        stopReloading();
        await plane.shutdown(graceMs);
      },
      close: async () => {
        stopReloading();
        await plane.close();
      },
    };
  }
}
