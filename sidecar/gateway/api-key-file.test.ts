import { mkdir, symlink, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import t from 'tap';
import { tempDir } from '../../test/helpers.ts';
import { loadConsumers } from './api-key-file.ts';
import { consumerOfKey, hashApiKey } from './consumers.ts';

const ACME = hashApiKey('acme-key');
const GLOBEX = hashApiKey('globex-key');

t.test(
  'consumers load from a YAML list, a Secret manifest or a mounted Secret folder alike',
  async (t) => {
    const dir = await tempDir(t);
    const list = join(dir, 'consumers.yaml');
    await writeFile(
      list,
      `consumers:\n  - { name: acme, sha256: ${ACME} }\n  - { name: globex, sha256: ${GLOBEX.toUpperCase()} }\n`,
    );
    const secret = join(dir, 'secret.yaml');
    await writeFile(
      secret,
      `apiVersion: v1\nkind: Secret\nmetadata: { name: gateway-api-keys }\ntype: Opaque\ndata:\n  acme: ${Buffer.from(ACME).toString('base64')}\nstringData:\n  globex: ${GLOBEX}\n`,
    );
    // What the kubelet writes for a mounted Secret: timestamped data behind ..data symlinks.
    const mounted = join(dir, 'mounted');
    const data = join(mounted, '..2026_11_26_07_00_00.123');
    await mkdir(data, { recursive: true });
    await writeFile(join(data, 'acme'), `${ACME}\n`);
    await writeFile(join(data, 'globex'), GLOBEX);
    await symlink('..2026_11_26_07_00_00.123', join(mounted, '..data'));
    await symlink('..data/acme', join(mounted, 'acme'));
    await symlink('..data/globex', join(mounted, 'globex'));

    for (const source of [list, secret, mounted]) {
      const consumers = await loadConsumers(source);
      t.same(consumers.map((c) => c.name).sort(), ['acme', 'globex'], source);
      t.equal(consumerOfKey(consumers, 'acme-key'), 'acme');
      t.equal(consumerOfKey(consumers, 'globex-key'), 'globex');
      t.equal(consumerOfKey(consumers, 'acme-kex'), undefined);
    }
  },
);

t.test(
  'a key where its hash belongs, a bad name or a consumer listed twice is refused naming it',
  async (t) => {
    const dir = await tempDir(t);
    const file = join(dir, 'consumers.yaml');
    const cases: [string, RegExp][] = [
      [
        `consumers: [{ name: acme, sha256: acme-key }]`,
        /consumers\[0\]: consumer acme: expected the key's SHA-256 as 64 hex digits/,
      ],
      [
        `consumers: [{ name: Acme Corp, sha256: ${ACME} }]`,
        /consumer name "Acme Corp" must be lower-case/,
      ],
      [
        `consumers: [{ name: acme, sha256: ${ACME} }, { name: acme, sha256: ${GLOBEX} }]`,
        /consumer acme is listed twice/,
      ],
      [`keys: []`, /expected "consumers: \[\{ name, sha256 \}\]" or a Kubernetes Secret/],
      [
        `consumers: [{ name: acme, sha256: ${ACME} }, { name: globex, sha256: ${ACME} }]`,
        /consumers acme and globex have the same key/,
      ],
    ];
    for (const [text, error] of cases) {
      await writeFile(file, text);
      await t.rejects(loadConsumers(file), error, text);
    }
  },
);
