/**
 * The operator commands' one way to the control plane's operator API
 * (`certs rotate`, `blocks`): mTLS as the operator whose credentials folder
 * is given, JSON in and out, and a ControlPlaneError that says what the
 * control plane answered.
 */
import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
// Static on purpose: in the bundle, import() of a CommonJS package yields only
// its default export (esbuild splitting), so `Agent` came back undefined.
import { Agent, request } from 'undici';
import { ConfigError, ControlPlaneError } from '../common/errors.ts';
import { TLS_POLICY } from '../common/tls-policy.ts';
import type { FlagSpec } from './flags.ts';

export const OPERATOR_FLAGS: readonly FlagSpec[] = [
  {
    name: 'control-plane',
    help: 'the control plane API, e.g. https://localhost:15010',
    required: true,
  },
  {
    name: 'credentials',
    help: "folder with an operator's cert.pem, key.pem and bundle.pem (as `certs issue` writes them); the identity must be one of the control plane's --operators",
    required: true,
  },
];

/** One call to the operator API; resolves with the JSON answer ({} for none). */
export async function asOperator<T>(
  values: Readonly<Record<string, string | undefined>>,
  method: 'GET' | 'POST' | 'DELETE',
  path: string,
  body?: unknown,
): Promise<T> {
  const dir = values.credentials!;
  const [cert, key, ca] = await Promise.all(
    ['cert.pem', 'key.pem', 'bundle.pem'].map((name) =>
      readFile(join(dir, name), 'utf8').catch((error: Error) => {
        throw new ConfigError(`--credentials: ${error.message}`);
      }),
    ),
  );
  const agent = new Agent({ connect: { cert, key, ca, ...TLS_POLICY } });
  const url = `${values['control-plane']!.replace(/\/+$/, '')}${path}`;
  try {
    const response = await request(url, {
      method,
      dispatcher: agent,
      ...(body === undefined
        ? {}
        : { headers: { 'content-type': 'application/json' }, body: JSON.stringify(body) }),
    }).catch((error: Error) => {
      throw new ControlPlaneError(`${method} ${url} failed: ${error.message}`, { cause: error });
    });
    // An answer that is not JSON (something else on that port, a 204) still ends clearly.
    const answer = (await response.body.json().catch(() => ({}))) as T & {
      error?: { message: string };
    };
    if (response.statusCode >= 300) {
      throw new ControlPlaneError(
        `${method} ${path} answered ${response.statusCode}: ${answer.error?.message ?? 'no reason given'}`,
        { status: response.statusCode },
      );
    }
    return answer;
  } finally {
    await agent.close();
  }
}
