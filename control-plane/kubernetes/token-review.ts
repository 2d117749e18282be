import { createHash } from 'node:crypto';
import { AuthenticationV1Api, type KubeConfig } from '@kubernetes/client-node';
import { UnavailableError } from '../../common/errors.ts';

/** The audience injected pods' projected tokens carry (injection.ts mounts it so). */
export const TOKEN_AUDIENCE = 'postern';

/** Who a projected ServiceAccount token proves the bearer is: a service account, in a pod. */
export interface ReviewedToken {
  readonly namespace: string;
  readonly serviceAccount: string;
  /** The pod the token is bound to, and its UID (a pod recreated under the name has another). */
  readonly podName: string;
  readonly podUid: string;
  /** When the token stops being valid (its `exp`), epoch ms. */
  readonly expiresAtMs: number;
}

const SERVICE_ACCOUNT_USER = /^system:serviceaccount:([a-z0-9-]+):([a-z0-9.-]+)$/;
const POD_NAME = 'authentication.kubernetes.io/pod-name';
const POD_UID = 'authentication.kubernetes.io/pod-uid';

/** Reviews in flight at once: beyond this, callers are told to retry (503) rather than queued. */
const MAX_IN_FLIGHT = 32;
/** Tokens already reviewed, remembered until they expire: a sidecar restarting sends the same one. */
const REMEMBERED = 10_000;

/**
 * The claims of a JWT, not verified: only to turn away at once what the API
 * server would refuse anyway (not a JWT, another audience, expired, not a
 * pod-bound service-account token), so that a flood of junk credentials
 * costs the control plane a parse each, never a TokenReview against the API
 * server. The review is what proves anything.
 */
function unverifiedClaims(token: string, nowMs: number): { exp: number } | undefined {
  const parts = token.split('.');
  if (parts.length !== 3) return undefined;
  let claims: { aud?: unknown; exp?: unknown; 'kubernetes.io'?: { pod?: unknown } };
  try {
    claims = JSON.parse(Buffer.from(parts[1]!, 'base64url').toString('utf8'));
  } catch {
    return undefined;
  }
  const audiences = Array.isArray(claims?.aud) ? claims.aud : [claims?.aud];
  if (!audiences.includes(TOKEN_AUDIENCE)) return undefined;
  if (typeof claims.exp !== 'number' || claims.exp * 1000 <= nowMs) return undefined;
  if (!claims['kubernetes.io']?.pod) return undefined;
  return { exp: claims.exp };
}

/**
 * Verifies projected ServiceAccount tokens with the TokenReview API
 * (audience `postern`): the API server checks the signature, the expiry and
 * that the pod the token is bound to still exists, and says which service
 * account and pod it is. The control plane needs `create` on tokenreviews.
 */
export class TokenReviewer {
  readonly #api: Pick<AuthenticationV1Api, 'createTokenReview'>;
  readonly #now: () => number;
  readonly #remembered = new Map<string, ReviewedToken>();
  #inFlight = 0;

  constructor(kubeConfig: KubeConfig, now: () => number = Date.now) {
    this.#api = kubeConfig.makeApiClient(AuthenticationV1Api);
    this.#now = now;
  }

  /** Whether `token` looks like a token this reviewer could accept (a JWT for our audience, unexpired). */
  accepts(token: string): boolean {
    return unverifiedClaims(token, this.#now()) !== undefined;
  }

  /**
   * Who the token proves, or undefined when the API server does not
   * authenticate it for our audience or it is not bound to a pod. Throws
   * UnavailableError when the API server cannot answer now (the caller
   * retries; a failed review never reads as a refusal or an acceptance).
   */
  async review(token: string): Promise<ReviewedToken | undefined> {
    const now = this.#now();
    const claims = unverifiedClaims(token, now);
    if (!claims) return undefined;
    const key = createHash('sha256').update(token).digest('hex');
    const known = this.#remembered.get(key);
    if (known && known.expiresAtMs > now) return known;
    if (this.#inFlight >= MAX_IN_FLIGHT)
      throw new UnavailableError('too many token reviews in flight; retry shortly');
    this.#inFlight++;
    let status: Awaited<ReturnType<AuthenticationV1Api['createTokenReview']>>['status'];
    try {
      ({ status } = await this.#api.createTokenReview({
        body: {
          apiVersion: 'authentication.k8s.io/v1',
          kind: 'TokenReview',
          spec: { token, audiences: [TOKEN_AUDIENCE] },
        },
      }));
    } catch (error) {
      throw new UnavailableError(
        `the Kubernetes API could not review the token: ${(error as Error).message}`,
      );
    } finally {
      this.#inFlight--;
    }
    if (!status?.authenticated) return undefined;
    // An empty status.audiences means the token is for the API server itself, not for us.
    if (!status.audiences?.includes(TOKEN_AUDIENCE)) return undefined;
    const user = SERVICE_ACCOUNT_USER.exec(status.user?.username ?? '');
    const podName = status.user?.extra?.[POD_NAME]?.[0];
    const podUid = status.user?.extra?.[POD_UID]?.[0];
    if (!user || !podName || !podUid) return undefined;
    const reviewed: ReviewedToken = Object.freeze({
      namespace: user[1]!,
      serviceAccount: user[2]!,
      podName,
      podUid,
      expiresAtMs: claims.exp * 1000,
    });
    if (this.#remembered.size >= REMEMBERED)
      this.#remembered.delete(this.#remembered.keys().next().value!);
    this.#remembered.set(key, reviewed);
    return reviewed;
  }
}
