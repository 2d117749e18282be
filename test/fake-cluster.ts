/**
 * A cluster's API for tests that need several kinds at once (the control
 * plane in cluster mode): an in-memory store of objects served over real
 * HTTPS in the API's wire format (lists `{kind: XList, metadata:
 * {resourceVersion}, items}`, watch streams of `{type, object}` lines,
 * Status objects for errors), and TokenReviews answered from a table the
 * test fills. No API server runs here; the client side is the real
 * @kubernetes/client-node. The objects are hand-written in the form
 * `kubectl get -o json` shows them, not recorded from a cluster.
 */
import type { ServerResponse } from 'node:http';
import type { KubeConfig } from '@kubernetes/client-node';
import { type RecordedRequest, sendJson, startFakeKubernetesApi } from './fake-kubernetes-api.ts';

export interface StoredObject {
  apiVersion: string;
  kind: string;
  metadata: {
    name: string;
    namespace?: string;
    uid?: string;
    resourceVersion?: string;
    labels?: Record<string, string>;
    annotations?: Record<string, string>;
    [field: string]: unknown;
  };
  [field: string]: unknown;
}

/** What the API server says of a token in a TokenReview's status. */
export interface TokenReviewStatus {
  authenticated: boolean;
  audiences?: string[];
  user?: { username: string; uid?: string; groups?: string[]; extra?: Record<string, string[]> };
  error?: string;
}

/** The kinds this cluster serves: apiVersion and plural. */
const KINDS: Record<string, { apiVersion: string; plural: string }> = {
  Namespace: { apiVersion: 'v1', plural: 'namespaces' },
  Pod: { apiVersion: 'v1', plural: 'pods' },
  Service: { apiVersion: 'v1', plural: 'services' },
  ConfigMap: { apiVersion: 'v1', plural: 'configmaps' },
  EndpointSlice: { apiVersion: 'discovery.k8s.io/v1', plural: 'endpointslices' },
  RoutePolicy: { apiVersion: 'postern.dev/v1alpha1', plural: 'routepolicies' },
  HTTPRoute: { apiVersion: 'gateway.networking.k8s.io/v1', plural: 'httproutes' },
};

/** The cluster-wide list path of a kind: /api/v1/pods, /apis/discovery.k8s.io/v1/endpointslices. */
function listPathOf(kind: string): string {
  const { apiVersion, plural } = KINDS[kind]!;
  return `${apiVersion.includes('/') ? `/apis/${apiVersion}` : `/api/${apiVersion}`}/${plural}`;
}

const notFound = (res: ServerResponse, what: string) =>
  sendJson(res, 404, {
    kind: 'Status',
    apiVersion: 'v1',
    status: 'Failure',
    message: `${what} not found`,
    reason: 'NotFound',
    code: 404,
  });

export interface FakeCluster {
  readonly kubeConfig: KubeConfig;
  readonly requests: RecordedRequest[];
  /** Token → what a TokenReview of it answers; a token not here is not authenticated. */
  readonly reviews: Map<string, TokenReviewStatus>;
  /**
   * Adds or replaces an object; open watches of its kind hear ADDED or
   * MODIFIED, unless `quietly` (the watch event has not arrived yet).
   */
  put(object: StoredObject, quietly?: 'quietly'): void;
  /** Deletes an object; open watches of its kind hear DELETED. */
  remove(kind: string, namespace: string | undefined, name: string): void;
  get(kind: string, namespace: string | undefined, name: string): StoredObject | undefined;
  /** Whether a watch of this kind is open. */
  watching(kind: string): boolean;
  /** Makes the API refuse every request with 503 (an API server down) until set back. */
  setDown(down: boolean): void;
}

export async function startFakeCluster(
  t: { teardown(fn: () => unknown): void },
  objects: readonly StoredObject[] = [],
): Promise<FakeCluster> {
  let resourceVersion = 1;
  /** By kind, then `namespace/name`. */
  const store = new Map(Object.keys(KINDS).map((kind) => [kind, new Map<string, StoredObject>()]));
  const kindAt = new Map(Object.keys(KINDS).map((kind) => [listPathOf(kind), kind]));
  const watchers = new Map<string, Set<ServerResponse>>();
  const reviews = new Map<string, TokenReviewStatus>();
  let down = false;
  const keyOf = (namespace: string | undefined, name: string) => `${namespace ?? ''}/${name}`;
  const notify = (type: string, object: StoredObject) => {
    for (const watcher of watchers.get(object.kind) ?? [])
      watcher.write(`${JSON.stringify({ type, object })}\n`);
  };
  const put = (object: StoredObject, quietly?: 'quietly') => {
    const items = store.get(object.kind)!;
    const key = keyOf(object.metadata.namespace, object.metadata.name);
    const existed = items.has(key);
    const stored = structuredClone(object);
    stored.metadata.resourceVersion = String(++resourceVersion);
    stored.metadata.uid ??= `uid-${object.kind}-${key}`;
    items.set(key, stored);
    if (!quietly) notify(existed ? 'MODIFIED' : 'ADDED', stored);
  };
  for (const object of objects) put(object);

  /**
   * What the API server answers: the token's own status where the test
   * vouched for it, narrowed to the audiences asked for (none in common:
   * not authenticated), and refused when the pod it is bound to is gone.
   */
  const reviewed = (spec: { token: string; audiences?: string[] }): TokenReviewStatus => {
    const refused = (error: string) => ({ authenticated: false, error });
    const status = reviews.get(spec.token);
    if (!status?.authenticated)
      return (
        status ??
        refused('[invalid bearer token, square/go-jose: error in cryptographic primitive]')
      );
    const audiences = spec.audiences?.length
      ? (status.audiences ?? []).filter((a) => spec.audiences!.includes(a))
      : [];
    if (spec.audiences?.length && !audiences.length)
      return refused(
        '[invalid bearer token, token audiences ["x"] is invalid for the target audiences]',
      );
    const extra = status.user?.extra ?? {};
    const podName = extra['authentication.kubernetes.io/pod-name']?.[0];
    const namespace = status.user?.username.split(':')[2];
    if (podName) {
      const pod = store.get('Pod')!.get(keyOf(namespace, podName));
      if (pod?.metadata.uid !== extra['authentication.kubernetes.io/pod-uid']?.[0])
        return refused(`[invalid bearer token, pod "${podName}" not found]`);
    }
    return { ...status, audiences };
  };
  const api = await startFakeKubernetesApi(t, (req, res) => {
    if (down)
      return sendJson(res, 503, { kind: 'Status', code: 503, message: 'the API server is down' });
    if (req.method === 'POST' && req.path === '/apis/authentication.k8s.io/v1/tokenreviews') {
      const review = req.body as { spec: { token: string; audiences?: string[] } };
      return sendJson(res, 201, { ...review, status: reviewed(review.spec) });
    }
    const aNamespace = /^\/api\/v1\/namespaces\/([^/]+)$/.exec(req.path);
    if (aNamespace && req.method === 'GET') {
      const found = store.get('Namespace')!.get(keyOf(undefined, aNamespace[1]!));
      return found ? sendJson(res, 200, found) : notFound(res, `namespaces ${aNamespace[1]}`);
    }
    // Namespaced object paths: /api/v1/namespaces/NS/PLURAL[/NAME]
    const namespaced = /^\/api\/v1\/namespaces\/([^/]+)\/([^/]+)(?:\/([^/]+))?$/.exec(req.path);
    if (namespaced) {
      const [, namespace, plural, name] = namespaced;
      const kind = kindAt.get(`/api/v1/${plural}`);
      if (!kind) return notFound(res, req.path);
      const items = store.get(kind)!;
      if (req.method === 'POST') {
        put({ ...(req.body as StoredObject), apiVersion: 'v1', kind });
        return sendJson(
          res,
          201,
          items.get(keyOf(namespace, (req.body as StoredObject).metadata.name)),
        );
      }
      const current = name ? items.get(keyOf(namespace, name)) : undefined;
      if (!current) return notFound(res, `${plural} ${namespace}/${name}`);
      if (req.method === 'PATCH') {
        put({ ...current, ...(req.body as object) } as StoredObject);
        return sendJson(res, 200, items.get(keyOf(namespace, name!)));
      }
      return sendJson(res, 200, current);
    }
    const kind = kindAt.get(req.path);
    if (req.method !== 'GET' || !kind) return notFound(res, req.path);
    if (req.query.get('watch') === 'true') {
      res.writeHead(200, { 'content-type': 'application/json', 'transfer-encoding': 'chunked' });
      res.flushHeaders();
      const open = watchers.get(kind) ?? new Set();
      watchers.set(kind, open.add(res));
      res.on('close', () => open.delete(res));
      return;
    }
    sendJson(res, 200, {
      kind: `${kind}List`,
      apiVersion: KINDS[kind]!.apiVersion,
      metadata: { resourceVersion: String(resourceVersion) },
      items: [...store.get(kind)!.values()],
    });
  });
  t.teardown(() => {
    for (const open of watchers.values()) for (const watcher of open) watcher.end();
  });
  return {
    kubeConfig: api.kubeConfig,
    requests: api.requests,
    reviews,
    put,
    remove(kind, namespace, name) {
      const object = store.get(kind)?.get(keyOf(namespace, name));
      if (!object) return;
      store.get(kind)!.delete(keyOf(namespace, name));
      notify('DELETED', object);
    },
    get: (kind, namespace, name) => store.get(kind)?.get(keyOf(namespace, name)),
    watching: (kind) => (watchers.get(kind)?.size ?? 0) > 0,
    setDown(value) {
      down = value;
    },
  };
}
