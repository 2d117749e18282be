/**
 * The end-user identity provider `postern up` runs for its gateway demo:
 * an ES256 key made at start, its JWKS at /.well-known/jwks.json, and
 * /token?sub=NAME minting a token for anyone who asks (a demo, on
 * loopback only). demo/policies/gateway.yaml names it by its fixed
 * address, which is why its port is fixed where every other demo port is
 * chosen free.
 */
import { createServer } from 'node:http';
import { exportJWK, generateKeyPair, SignJWT } from 'jose';
import { closeServer, listen } from '../../common/listen.ts';

export const DEMO_ISSUER_PORT = 15080;
export const DEMO_ISSUER = `http://127.0.0.1:${DEMO_ISSUER_PORT}`;
/** The audience the demo gateway's policy accepts. */
export const DEMO_AUDIENCE = 'shop';

export interface DemoIssuer {
  /** A token for `subject` with scope orders.read, valid for an hour. */
  token(subject: string): Promise<string>;
  close(): Promise<void>;
}

export async function startDemoIssuer(port = DEMO_ISSUER_PORT): Promise<DemoIssuer> {
  const { publicKey, privateKey } = await generateKeyPair('ES256', { extractable: true });
  const jwks = JSON.stringify({
    keys: [{ ...(await exportJWK(publicKey)), kid: 'demo', alg: 'ES256', use: 'sig' }],
  });
  const token = (subject: string) =>
    new SignJWT({ scope: 'orders.read' })
      .setProtectedHeader({ alg: 'ES256', kid: 'demo', typ: 'JWT' })
      .setIssuer(DEMO_ISSUER)
      .setAudience(DEMO_AUDIENCE)
      .setSubject(subject)
      .setIssuedAt()
      .setExpirationTime('1h')
      .sign(privateKey);
  const server = createServer((req, res) => {
    const url = new URL(req.url ?? '/', DEMO_ISSUER);
    if (url.pathname === '/.well-known/jwks.json') {
      res.writeHead(200, { 'content-type': 'application/json' });
      res.end(jwks);
      return;
    }
    if (url.pathname === '/token') {
      const subject = url.searchParams.get('sub') || 'alice';
      token(subject).then((jwt) => {
        res.writeHead(200, { 'content-type': 'text/plain' });
        res.end(jwt);
      });
      return;
    }
    res.writeHead(404, { 'content-type': 'text/plain' });
    res.end('try /token?sub=alice or /.well-known/jwks.json\n');
  });
  try {
    await listen(server, port, '127.0.0.1');
  } catch (error) {
    throw new Error(
      `the demo identity provider needs 127.0.0.1:${port}, which is taken (${(error as Error).message}); the gateway's demo policy names that address`,
    );
  }
  return { token, close: () => closeServer(server) };
}
