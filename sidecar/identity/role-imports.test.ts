import { readFile } from 'node:fs/promises';
import { join, resolve } from 'node:path';
import t from 'tap';
import { freePort, startChild, stopChild, waitUntilHealthy } from '../../cli/processes.ts';
import { startTestMesh, tempDir } from '../../test/helpers.ts';

// What other roles may load and the sidecar must not (issue 7): the CA's
// certificate library with its reflect-metadata/tsyringe stack (~10 MB of the
// sidecar's RSS at ready), the Kubernetes client, and YAML (policy files are
// the control plane's and `policy validate`'s; sidecars get JSON snapshots).
const CONTROL_PLANE_ONLY = [
  '@peculiar/',
  'reflect-metadata/',
  'tsyringe/',
  '@kubernetes/client-node/',
  'yaml/',
];
// Nor our own control-plane code: its modules come with the commands that run it.
const CONTROL_PLANE_SOURCE = '/control-plane/';

// Nor what only `postern gateway` runs: its listener and its API-key file reader.
const GATEWAY_ONLY = ['/sidecar/listeners/gateway.ts', '/sidecar/gateway/api-key-file.ts'];

// The source, not a bundle: what is checked is the import graph, which is also
// what keeps the CA in a chunk of its own when the binary is bundled.
const SOURCE_BIN = resolve(import.meta.dirname, '../../bin/postern.ts');

/**
 * A `--import` module that appends every module the process resolves to
 * `file` as it happens, so the list is whole whenever it is read.
 */
function recorder(file: string): string {
  const source = `
    import { appendFileSync } from 'node:fs';
    import { registerHooks } from 'node:module';
    registerHooks({
      resolve(specifier, context, next) {
        const resolved = next(specifier, context);
        appendFileSync(${JSON.stringify(file)}, resolved.url + '\\n');
        return resolved;
      },
    });`;
  return `data:text/javascript,${encodeURIComponent(source)}`;
}

t.test(
  "a sidecar started by the postern binary reaches ready without loading the control plane's libraries",
  async (t) => {
    const mesh = await startTestMesh(t, '');
    const dir = await tempDir(t);
    const modules = join(dir, 'modules.txt');
    const adminPort = await freePort();
    // Node flags go on the command line: tap rewrites NODE_OPTIONS for the processes it spawns.
    const sidecar = startChild(
      'sidecar',
      [
        '--import',
        recorder(modules),
        SOURCE_BIN,
        'sidecar',
        ...['--control-plane', mesh.controlPlaneUrl, '--ca-file', mesh.caFile],
        ...['--bootstrap-token-file', await mesh.tokenFor('orders', 'shop')],
        ...['--workload', 'orders', '--namespace', 'shop', '--service-account', 'orders'],
        ...['--app-port', String(await freePort()), '--inbound-host', '127.0.0.1'],
        ...['--inbound-port', '0', '--outbound-port', '0', '--admin-port', String(adminPort)],
      ],
      {},
      join(dir, 'sidecar.log'),
    );
    t.teardown(() => stopChild(sidecar));
    await waitUntilHealthy(`http://127.0.0.1:${adminPort}/healthz/ready`, sidecar, 30_000);
    const loaded = [...new Set((await readFile(modules, 'utf8')).trim().split('\n'))];
    t.ok(
      loaded.some((url) => url.endsWith('/certs/csr.ts')),
      'the recorder saw the module that made the CSR',
    );
    t.same(
      loaded.filter(
        (url) =>
          CONTROL_PLANE_ONLY.some((name) => url.includes(`/node_modules/${name}`)) ||
          (url.includes(CONTROL_PLANE_SOURCE) && !url.includes('/node_modules/')),
      ),
      [],
    );
    t.same(
      loaded.filter((url) => GATEWAY_ONLY.some((path) => url.endsWith(path))),
      [],
      "nor the gateway's own modules",
    );
  },
);
