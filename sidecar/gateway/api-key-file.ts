/**
 * API-key consumers of the gateway: each a name and the SHA-256 of its key
 * (hex), never the key itself. They come from one of three shapes, so the
 * same list works locally and in a cluster:
 *   - a YAML or JSON file: `consumers: [{ name: acme, sha256: <hex> }]`;
 *   - a Kubernetes Secret manifest (`kind: Secret`), one entry per consumer
 *     in `stringData` (hex) or `data` (base64 of the hex);
 *   - a directory, as a Secret mounted into the pod is: one file per
 *     consumer, named after it, holding the hex.
 * Only `postern gateway` loads this module (and the YAML parser with it).
 */
import { readdir, readFile, stat } from 'node:fs/promises';
import { join } from 'node:path';
import { parse } from 'yaml';
import { ConfigError } from '../../common/errors.ts';
import type { Consumer } from './consumers.ts';

const HEX_SHA256 = /^[0-9a-f]{64}$/;
/** What a consumer is called in policy (`consumer:<name>`): a DNS subdomain, as Kubernetes names are. */
const CONSUMER_NAME = /^[a-z0-9]([-a-z0-9.]{0,251}[a-z0-9])?$/;

function consumer(name: string, hex: string, where: string): Consumer {
  if (!CONSUMER_NAME.test(name))
    throw new ConfigError(
      `${where}: consumer name ${JSON.stringify(name)} must be lower-case letters, digits, - and .`,
    );
  const trimmed = hex.trim().toLowerCase();
  if (!HEX_SHA256.test(trimmed))
    throw new ConfigError(
      `${where}: consumer ${name}: expected the key's SHA-256 as 64 hex digits (printf %s "$KEY" | sha256sum), not the key`,
    );
  return Object.freeze({ name, hash: Buffer.from(trimmed, 'hex') });
}

function fromDocument(doc: unknown, file: string): Consumer[] {
  const record = (doc ?? {}) as Record<string, unknown>;
  if (record.kind === 'Secret') {
    const entries: Consumer[] = [];
    const data = (record.data ?? {}) as Record<string, unknown>;
    const stringData = (record.stringData ?? {}) as Record<string, unknown>;
    for (const [name, value] of Object.entries(data))
      entries.push(
        consumer(name, Buffer.from(String(value), 'base64').toString('utf8'), `${file}: data`),
      );
    for (const [name, value] of Object.entries(stringData))
      entries.push(consumer(name, String(value), `${file}: stringData`));
    return entries;
  }
  if (!Array.isArray(record.consumers))
    throw new ConfigError(
      `${file}: expected "consumers: [{ name, sha256 }]" or a Kubernetes Secret (kind: Secret)`,
    );
  return record.consumers.map((entry: unknown, i: number) => {
    const { name, sha256 } = (entry ?? {}) as Record<string, unknown>;
    if (typeof name !== 'string' || typeof sha256 !== 'string')
      throw new ConfigError(`${file}: consumers[${i}]: expected { name, sha256 } strings`);
    return consumer(name, sha256, `${file}: consumers[${i}]`);
  });
}

/** Reads consumers from a file or a mounted-Secret directory; throws ConfigError naming what is wrong. */
export async function loadConsumers(path: string): Promise<readonly Consumer[]> {
  let consumers: Consumer[];
  if ((await stat(path)).isDirectory()) {
    // A mounted Secret also holds ..data and timestamped folders: dot-names are its machinery.
    const names = (await readdir(path)).filter((name) => !name.startsWith('.'));
    consumers = await Promise.all(
      names.map(async (name) => consumer(name, await readFile(join(path, name), 'utf8'), path)),
    );
  } else {
    let doc: unknown;
    try {
      doc = parse(await readFile(path, 'utf8'));
    } catch (error) {
      throw new ConfigError(`${path}: not YAML or JSON: ${(error as Error).message}`);
    }
    consumers = fromDocument(doc, path);
  }
  const seen = new Set<string>();
  const hashes = new Map<string, string>();
  for (const { name, hash } of consumers) {
    if (seen.has(name)) throw new ConfigError(`${path}: consumer ${name} is listed twice`);
    seen.add(name);
    // One key, two consumers: whichever matched would be a guess about who is calling.
    const other = hashes.get(hash.toString('hex'));
    if (other) throw new ConfigError(`${path}: consumers ${other} and ${name} have the same key`);
    hashes.set(hash.toString('hex'), name);
  }
  return Object.freeze(consumers);
}
