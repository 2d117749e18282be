import { isHostPort } from '../../common/address.ts';
import { ForbiddenError } from '../../common/errors.ts';
import { BadRequestBodyError } from '../../common/http-json.ts';
import { formatLabels, parseLabels } from '../../common/wire.ts';
import { mayAdvertise, refuseRevoked, svidNotBefore, workloadCaller } from './caller.ts';
import type { ApiContext, Handler, Routes } from './context.ts';
import { SnapshotStream } from './snapshot-stream.ts';

const sortedLabels = (labels: Readonly<Record<string, string>>) =>
  formatLabels(Object.fromEntries(Object.entries(labels).sort()));

/**
 * GET /v1/snapshots: an SSE stream of this workload's snapshots. Opening it
 * registers the workload; closing it removes the registration. Every part of
 * the registration comes from what the caller proved, not from what it
 * says: the workload from its SVID, the labels from its bootstrap binding
 * (in a cluster, from its pod), the address only where it connects from. The query's `workload` and
 * `labels` are checked against those, so a misconfigured sidecar hears why.
 */
export function snapshotRoutes(ctx: ApiContext): Routes {
  const { credentials, hub, logger } = ctx;

  const watch: Handler = async (req, res, url) => {
    const caller = workloadCaller(req, 'the snapshot watch');
    const { spiffeId, workload } = caller;
    const asked = url.searchParams.get('workload');
    if (asked && asked !== workload) {
      throw new ForbiddenError(
        `the certificate of ${spiffeId} was issued for workload ${JSON.stringify(workload)}, not ${JSON.stringify(asked)}`,
      );
    }
    const address = url.searchParams.get('address') || undefined;
    let host = req.socket.remoteAddress ?? '';
    if (address !== undefined) {
      if (!isHostPort(address))
        throw new BadRequestBodyError(400, `address ${JSON.stringify(address)} is not host:port`);
      host = address.slice(0, address.lastIndexOf(':'));
      if (!mayAdvertise(host, req.socket.remoteAddress)) {
        throw new ForbiddenError(
          `address ${JSON.stringify(address)} is not where this sidecar connects from (${req.socket.remoteAddress}); a sidecar advertises its own IP`,
        );
      }
    }
    const binding = await credentials.bindingFor(workload, spiffeId, host);
    // The caller may have gone while we looked: registering it now would
    // leave a registry entry that nothing ever removes.
    if (res.destroyed) return;
    if (!binding) {
      throw new ForbiddenError(
        `${spiffeId} is not bound to workload ${JSON.stringify(workload)} any more (revoked), and no live pod of it runs at ${host}`,
      );
    }
    refuseRevoked(req, spiffeId, ctx.revokedUpTo);
    const { labels } = binding;
    const askedLabels = url.searchParams.get('labels');
    // A pod's labels are the pod's as the API says now; a token's were bound with it, and a sidecar asking for others is misconfigured.
    if (askedLabels && binding.via === 'bootstrap-token') {
      let parsed: Record<string, string>;
      try {
        parsed = parseLabels(askedLabels);
      } catch (error) {
        throw new BadRequestBodyError(400, (error as Error).message);
      }
      if (sortedLabels(parsed) !== sortedLabels(labels)) {
        throw new ForbiddenError(
          `labels come from the credential: workload ${workload} was bound with ${JSON.stringify(sortedLabels(labels))}, the sidecar asked for ${JSON.stringify(sortedLabels(parsed))} (mint its token with --labels to change them)`,
        );
      }
    }
    const stream = new SnapshotStream(res, {
      keepAliveMs: ctx.keepAliveMs,
      stalledAfterMs: ctx.stalledStreamMs,
      onStalled: () =>
        logger.warn('snapshot watch cut off: the sidecar is not reading', { workload, spiffeId }),
    });
    const unsubscribe = hub.subscribe({
      workload,
      namespace: caller.namespace,
      labels,
      address,
      spiffeId,
      via: binding.via,
      certificateNotBeforeMs: svidNotBefore(req),
      send: (snapshot) => stream.send(snapshot),
      close: (reason) => {
        logger.info('snapshot watch ended by the control plane', {
          workload,
          spiffeId,
          address,
          reason,
        });
        stream.cut();
      },
    });
    logger.info('workload subscribed', { workload, spiffeId, address, labels });
    res.on('close', () => {
      unsubscribe();
      logger.info('workload unsubscribed', { workload, spiffeId, address });
    });
  };

  return { 'GET /v1/snapshots': watch };
}
