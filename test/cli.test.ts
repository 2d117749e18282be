import { execFileSync } from 'node:child_process';
import { readFile, stat, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { Deployment } from 'kubernetes-models/apps/v1/Deployment';
import { CronJob } from 'kubernetes-models/batch/v1/CronJob';
import t from 'tap';
import { parseAllDocuments } from 'yaml';
import { postern, tempDir } from './helpers.ts';
import { opensslCa, opensslLeaf } from './openssl.ts';

t.test(
  'certs init and certs issue make a CA and a client certificate that openssl verifies',
  async (t) => {
    const dir = await tempDir(t);
    const init = postern('certs', 'init', '--out', join(dir, 'ca'));
    t.equal(init.status, 0, init.stderr);
    t.equal((await stat(join(dir, 'ca', 'ca.key'))).mode & 0o777, 0o600);
    const issue = postern(
      'certs',
      'issue',
      '--ca',
      join(dir, 'ca'),
      '--spiffe-id',
      'spiffe://cluster.local/ns/default/sa/me',
      '--out',
      join(dir, 'me'),
      '--ttl',
      '1h',
    );
    t.equal(issue.status, 0, issue.stderr);
    t.equal((await stat(join(dir, 'me', 'key.pem'))).mode & 0o777, 0o600);
    t.match(
      execFileSync(
        'openssl',
        ['verify', '-CAfile', join(dir, 'me', 'bundle.pem'), join(dir, 'me', 'cert.pem')],
        { encoding: 'utf8' },
      ),
      /OK/,
    );
    t.match(
      execFileSync(
        'openssl',
        ['x509', '-in', join(dir, 'me', 'cert.pem'), '-noout', '-ext', 'subjectAltName'],
        { encoding: 'utf8' },
      ),
      /URI:spiffe:\/\/cluster\.local\/ns\/default\/sa\/me/,
    );
  },
);

t.test('certs issue refuses a malformed SPIFFE ID with the reason', async (t) => {
  const dir = await tempDir(t);
  postern('certs', 'init', '--out', join(dir, 'ca'));
  const issue = postern(
    'certs',
    'issue',
    '--ca',
    join(dir, 'ca'),
    '--spiffe-id',
    'spiffe://cluster.local/orders',
    '--out',
    join(dir, 'x'),
  );
  t.equal(issue.status, 2);
  t.match(issue.stderr, /invalid SPIFFE ID .*\/ns\/<namespace>\/sa\/<service-account>/);
});

t.test(
  'policy validate exits 0 on the demo policies and 1 with precise errors on a bad file',
  async (t) => {
    const good = postern('policy', 'validate', join(import.meta.dirname, '../demo/policies'));
    t.equal(good.status, 0, good.stdout);
    t.match(
      good.stdout,
      /3 valid RoutePolicy resource\(s\), 1 valid HTTPRoute resource\(s\), 0 error\(s\)/,
    );
    const dir = await tempDir(t);
    const bad = join(dir, 'bad.yaml');
    await writeFile(
      bad,
      'apiVersion: postern.dev/v1alpha1\nkind: RoutePolicy\nmetadata: { name: x, namespace: shop }\nspec:\n  defaultAction: maybe\n  routes: []\n',
    );
    const result = postern('policy', 'validate', bad);
    t.equal(result.status, 1);
    t.match(
      result.stdout,
      `error: ${bad}: RoutePolicy shop/x: spec.defaultAction: expected one of allow, deny; found "maybe"`,
    );
  },
);

t.test('an unknown command prints the command list and exits 2; --help exits 0', async (t) => {
  const unknown = postern('frobnicate');
  t.equal(unknown.status, 2);
  t.match(unknown.stderr, /unknown command "frobnicate"[\s\S]*control-plane/);
  const overview = postern('--help');
  t.equal(overview.status, 0);
  t.match(overview.stdout, /Commands:[\s\S]*policy validate/, 'asked-for help goes to stdout');
  const help = postern('sidecar', '--help');
  t.equal(help.status, 0);
  t.match(help.stdout, /--bootstrap-token-file .*\[POSTERN_BOOTSTRAP_TOKEN_FILE\]/);
});

t.test(
  'postern gateway refuses a server certificate and key that do not belong together, naming both files',
  async (t) => {
    const dir = await tempDir(t);
    const a = await opensslLeaf(dir, await opensslCa(dir, 'ca-a'), 'a.example', {
      server: { dns: ['a.example'] },
    });
    const b = await opensslLeaf(dir, await opensslCa(dir, 'ca-b'), 'b.example', {
      server: { dns: ['b.example'] },
    });
    await writeFile(join(dir, 'token'), 'unused');
    const result = postern(
      'gateway',
      ...['--control-plane', 'https://127.0.0.1:1', '--ca-file', a.cert],
      ...['--bootstrap-token-file', join(dir, 'token'), '--workload', 'edge'],
      ...['--namespace', 'shop', '--service-account', 'edge'],
      ...['--tls-cert', a.cert, '--tls-key', b.key, '--listen-port', '0', '--admin-port', '0'],
    );
    t.not(result.status, 0);
    t.match(result.stderr, `${a.cert} and ${b.key} are not a certificate and its key`);
    const help = postern('gateway', '--help');
    t.match(help.stdout, /--tls-cert .*\[POSTERN_TLS_CERT\]/);
  },
);

t.test(
  'postern inject adds the sidecar to every pod template of a manifest, leaves the rest, and is idempotent',
  async (t) => {
    const dir = await tempDir(t);
    const input = join(dir, 'shop.yaml');
    await writeFile(
      input,
      `# the shop
apiVersion: apps/v1
kind: Deployment
metadata: { name: orders, namespace: shop }
spec:
  selector: { matchLabels: { app: orders } }
  template:
    metadata: { labels: { app: orders } }
    spec:
      containers:
        - name: orders
          image: orders:1
          ports: [{ containerPort: 8080, name: http }]
          readinessProbe: { httpGet: { path: /ready, port: http } }
---
apiVersion: batch/v1
kind: CronJob
metadata: { name: nightly, namespace: shop }
spec:
  schedule: "0 3 * * *"
  jobTemplate:
    spec:
      template:
        metadata: { labels: { app: nightly } }
        spec:
          restartPolicy: OnFailure
          containers: [{ name: report, image: report:1 }]
---
apiVersion: apps/v1
kind: StatefulSet
metadata: { name: legacy, namespace: shop }
spec:
  serviceName: legacy
  selector: { matchLabels: { app: legacy } }
  template:
    metadata: { labels: { app: legacy }, annotations: { postern.dev/inject: "false" } }
    spec: { containers: [{ name: legacy, image: legacy:1 }] }
---
apiVersion: v1
kind: Service
metadata: { name: orders, namespace: shop }
spec: { selector: { app: orders }, ports: [{ port: 80, targetPort: 8080 }] }
`,
    );
    const output = join(dir, 'injected.yaml');
    const result = postern('inject', '-f', input, '-o', output);
    t.equal(result.status, 0, result.stderr);
    t.match(result.stderr, /Deployment orders: injected/);
    t.match(result.stderr, /CronJob nightly: injected/);
    t.match(
      result.stderr,
      /StatefulSet legacy: not injected \(annotation postern.dev\/inject: "false"\)/,
    );
    const docs = parseAllDocuments(await readFile(output, 'utf8')).map((d) => d.toJS());
    t.equal(docs.length, 4);
    const [deployment, cronJob, statefulSet, service] = docs;
    t.doesNotThrow(() => new Deployment(deployment).validate(), 'a valid Deployment');
    t.doesNotThrow(() => new CronJob(cronJob).validate(), 'a valid CronJob');
    t.same(
      deployment.spec.template.spec.initContainers.map((c: { name: string }) => c.name),
      ['postern-init', 'postern-proxy'],
    );
    t.equal(
      cronJob.spec.jobTemplate.spec.template.spec.initContainers[1].restartPolicy,
      'Always',
      "a native sidecar: the Job's pod still completes",
    );
    t.notOk(statefulSet.spec.template.spec.initContainers, 'opted out');
    t.same(service.spec.ports, [{ port: 80, targetPort: 8080 }], 'a Service passes unchanged');

    const again = postern('inject', '-f', output);
    t.equal(again.status, 0);
    t.equal(
      again.stdout,
      await readFile(output, 'utf8'),
      'injecting twice gives the same manifest',
    );
    t.match(again.stderr, /Deployment orders: not injected \(already injected\)/);

    await writeFile(join(dir, 'broken.yaml'), 'kind: Pod\nspec: [unclosed\n');
    const broken = postern('inject', '-f', join(dir, 'broken.yaml'));
    t.equal(broken.status, 2, 'a bad input file is a usage error');
    t.match(broken.stderr, /broken\.yaml: document 1:/);
  },
);

t.test(
  'configuration errors at start-up are reported all at once, and the process exits 2 without starting',
  async (t) => {
    const sidecar = postern(
      'sidecar',
      '--control-plane',
      'https://127.0.0.1:1',
      '--ca-file',
      '/nonexistent',
      '--bootstrap-token-file',
      '/nonexistent',
      '--workload',
      'orders',
      '--namespace',
      'shop',
      '--service-account',
      'orders',
      '--app-port',
      'eighty',
      '--inbound-port',
      '99999',
      '--labels',
      'no-equals',
      '--usage-reports',
      'maybe',
      '--limits',
      'headers-timeout=soon,bogus=1',
      '--drain-timeout',
      'later',
      '--headers-with-underscores',
      'sometimes',
    );
    t.equal(sidecar.status, 2);
    for (const problem of [
      /--app-port must be a port number/,
      /--inbound-port must be a port number/,
      /--labels:/,
      /--usage-reports must be on or off/,
      /--limits: headers-timeout: expected a duration.*"bogus" is not a limit/,
      /--drain-timeout:/,
      /--headers-with-underscores must be/,
    ])
      t.match(sidecar.stderr, problem);
    t.notMatch(sidecar.stderr, /listening|certificate request/, 'nothing started');

    const controlPlane = postern(
      'control-plane',
      '--state',
      '/tmp/x',
      '--mesh-default',
      'open',
      '--policy-source',
      'files',
      '--api-port',
      '-1',
      '--svid-ttl',
      'forever',
    );
    t.equal(controlPlane.status, 2);
    for (const problem of [
      /--mesh-default must be deny or allow-authenticated/,
      /--policies DIR is required/,
      /--api-port must be a port number/,
      /--svid-ttl: expected a duration/,
    ])
      t.match(controlPlane.stderr, problem);

    // Flags that cannot be parsed at all are reported together too.
    const parse = postern('gateway', '--bogus', 'x', '--also-bogus', '--listen-port');
    t.equal(parse.status, 2);
    t.match(parse.stderr, /unknown flag --bogus/);
    t.match(parse.stderr, /unknown flag --also-bogus/);
    t.match(parse.stderr, /--listen-port needs a value/);
    t.match(parse.stderr, /missing --control-plane/);
  },
);
