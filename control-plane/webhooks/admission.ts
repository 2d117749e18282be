/**
 * The admission webhooks (DESIGN.md port 15017), AdmissionReview
 * `admission.k8s.io/v1` in and out:
 *   - POST /inject (mutating): a Pod being created gets the sidecar as a
 *     base64 JSON Patch, or is let through untouched with the reason;
 *   - POST /validate: a RoutePolicy, or an HTTPRoute whose parentRefs name a
 *     gateway of this mesh, being applied is refused with the same messages
 *     `postern policy validate` prints; HTTPRoutes of other controllers'
 *     gateways (features Postern lacks and they have) pass untouched.
 * The injection never refuses a pod: one that is not a Pod with containers
 * passes with a warning kubectl shows; one left alone passes as it is (the
 * control plane logs why). A request that is not an AdmissionReview gets 400.
 */
import type { IncomingMessage, ServerResponse } from 'node:http';
import { formatProblem } from '../../common/policy/problems.ts';
import { validateRoutePolicy } from '../../common/policy/validate.ts';
import { validateHttpRoute } from '../../common/policy/validate-httproute.ts';
import {
  type InjectionSettings,
  injectionDecision,
  injectPod,
  type PodTemplate,
} from './injection.ts';
import { injectionPatch } from './json-patch.ts';

export const ADMISSION_VERSION = 'admission.k8s.io/v1';
/** Kubernetes objects are at most 1.5 MiB in etcd; a review carries the object twice at most. */
const MAX_REVIEW_BYTES = 4 * 1024 * 1024;

interface AdmissionRequest {
  readonly uid: string;
  readonly kind?: { group?: string; version?: string; kind?: string };
  readonly namespace?: string;
  readonly operation?: string;
  readonly object?: unknown;
}

export interface AdmissionResponse {
  readonly uid: string;
  readonly allowed: boolean;
  readonly patchType?: 'JSONPatch';
  readonly patch?: string;
  readonly warnings?: readonly string[];
  readonly status?: { readonly code: number; readonly message: string };
}

export interface WebhookDeps {
  readonly settings: InjectionSettings;
  /** The labels of a namespace, as the cluster has them; {} when unknown. */
  namespaceLabels(
    namespace: string,
  ): Readonly<Record<string, string>> | Promise<Readonly<Record<string, string>>>;
  /** Told of every decision, for the log. */
  onDecision?(entry: Readonly<Record<string, unknown>>): void;
  /** Whether an HTTPRoute parent names a gateway of this mesh (only those routes are validated). */
  servesGateway(parent: { name: string; namespace: string }): boolean;
}

class BadReview extends Error {}

function reviewRequest(body: unknown): AdmissionRequest {
  const review = body as {
    apiVersion?: unknown;
    kind?: unknown;
    request?: AdmissionRequest;
  } | null;
  if (review?.apiVersion !== ADMISSION_VERSION || review.kind !== 'AdmissionReview')
    throw new BadReview(`expected an AdmissionReview of ${ADMISSION_VERSION}`);
  const request = review.request;
  if (!request || typeof request.uid !== 'string' || !request.uid)
    throw new BadReview('the AdmissionReview has no request.uid');
  return request;
}

/** The namespace a review's pod is created in. */
const namespaceOf = (request: AdmissionRequest) =>
  request.namespace ??
  (request.object as PodTemplate | undefined)?.metadata?.namespace ??
  'default';

/** The mutating webhook's answer for one request (a pure function of the request and the namespace's labels). */
export function injectReview(
  request: AdmissionRequest,
  deps: Omit<WebhookDeps, 'namespaceLabels'>,
  labels: Readonly<Record<string, string>>,
): AdmissionResponse {
  const pod = request.object as (PodTemplate & { kind?: string }) | undefined;
  const uid = request.uid;
  if (request.kind?.kind !== 'Pod' || !pod?.spec || !Array.isArray(pod.spec.containers)) {
    return { uid, allowed: true, warnings: ['postern: not a Pod with containers; not injected'] };
  }
  const namespace = namespaceOf(request);
  const decision = injectionDecision(pod, labels);
  const name = pod.metadata?.name ?? `${pod.metadata?.generateName ?? ''}*`;
  if (!decision.inject) {
    deps.onDecision?.({ namespace, pod: name, injected: false, reason: decision.reason });
    return { uid, allowed: true };
  }
  const injected = injectPod(pod, deps.settings, labels);
  deps.onDecision?.({ namespace, pod: name, injected: true });
  return {
    uid,
    allowed: true,
    patchType: 'JSONPatch',
    patch: Buffer.from(JSON.stringify(injectionPatch(pod, injected.pod))).toString('base64'),
    ...(injected.warnings.length
      ? { warnings: injected.warnings.map((w) => `postern: ${w}`) }
      : {}),
  };
}

/** Whether any parentRef of an HTTPRoute names one of this mesh's gateways. */
function namesOurGateway(object: unknown, namespace: string, deps: WebhookDeps): boolean {
  const refs = (object as { spec?: { parentRefs?: unknown } } | undefined)?.spec?.parentRefs;
  if (!Array.isArray(refs)) return true; // not even shaped like one: let validation say so
  return refs.some(
    (ref: { name?: unknown; namespace?: unknown }) =>
      typeof ref?.name === 'string' &&
      deps.servesGateway({
        name: ref.name,
        namespace: typeof ref.namespace === 'string' ? ref.namespace : namespace,
      }),
  );
}

/** The validating webhook's answer: RoutePolicies and this mesh's HTTPRoutes checked as `policy validate` checks them. */
export function validateReview(request: AdmissionRequest, deps: WebhookDeps): AdmissionResponse {
  const uid = request.uid;
  const object = request.object as { kind?: string; metadata?: { name?: string } } | undefined;
  if (
    object?.kind === 'HTTPRoute' &&
    !namesOurGateway(object, request.namespace ?? 'default', deps)
  )
    return { uid, allowed: true };
  const label = `${request.namespace ?? 'default'}/${object?.metadata?.name ?? '?'}`;
  const result =
    object?.kind === 'HTTPRoute'
      ? validateHttpRoute(object, label)
      : object?.kind === 'RoutePolicy'
        ? validateRoutePolicy(object, label, new Date())
        : undefined;
  if (!result) return { uid, allowed: true };
  const warnings = result.warnings.map((p) => formatProblem(p));
  if (!result.errors.length)
    return { uid, allowed: true, ...(warnings.length ? { warnings } : {}) };
  return {
    uid,
    allowed: false,
    status: { code: 422, message: result.errors.map((p) => formatProblem(p)).join('\n') },
    ...(warnings.length ? { warnings } : {}),
  };
}

function reply(res: ServerResponse, status: number, body: unknown): void {
  const text = JSON.stringify(body);
  res.writeHead(status, {
    'content-type': 'application/json',
    'content-length': Buffer.byteLength(text),
  });
  res.end(text);
}

async function readJson(req: IncomingMessage): Promise<unknown> {
  const chunks: Buffer[] = [];
  let size = 0;
  for await (const chunk of req as AsyncIterable<Buffer>) {
    size += chunk.length;
    if (size > MAX_REVIEW_BYTES)
      throw new BadReview(`the review is over ${MAX_REVIEW_BYTES} bytes`);
    chunks.push(chunk);
  }
  try {
    return JSON.parse(Buffer.concat(chunks).toString('utf8'));
  } catch {
    throw new BadReview('the body is not JSON');
  }
}

/** The request handler for the webhook port. */
export function admissionHandler(deps: WebhookDeps) {
  return async (req: IncomingMessage, res: ServerResponse): Promise<void> => {
    const path = (req.url ?? '').split('?')[0];
    if (path !== '/inject' && path !== '/validate') {
      reply(res, 404, {
        error: { code: 'POSTERN_NOT_FOUND', message: 'POST /inject or /validate' },
      });
      return;
    }
    if (req.method !== 'POST') {
      reply(res, 405, { error: { code: 'POSTERN_METHOD', message: `${path} takes POST` } });
      return;
    }
    let request: AdmissionRequest;
    try {
      request = reviewRequest(await readJson(req));
    } catch (error) {
      if (!(error instanceof BadReview)) throw error;
      res.shouldKeepAlive = false;
      reply(res, 400, { error: { code: 'POSTERN_BAD_REVIEW', message: error.message } });
      return;
    }
    const response =
      path === '/inject'
        ? injectReview(request, deps, await deps.namespaceLabels(namespaceOf(request)))
        : validateReview(request, deps);
    reply(res, 200, { apiVersion: ADMISSION_VERSION, kind: 'AdmissionReview', response });
  };
}
