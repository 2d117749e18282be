import { ForbiddenError } from '../../common/errors.ts';
import { BadRequestBodyError, readJsonBody, sendJson } from '../../common/http-json.ts';
import { MAX_ACK_REASON_CHARS, type SnapshotAck } from '../../common/wire.ts';
import { operatorIdentity, refuseRevoked, workloadCaller } from './caller.ts';
import type { ApiContext, Handler, Routes } from './context.ts';
import { NoWatchError } from './errors.ts';

const MAX_ACK_BYTES = 16 * 1024;
const MAX_FIELD_CHARS = 128;

const shortString = (value: unknown): value is string =>
  typeof value === 'string' && value.length <= MAX_FIELD_CHARS;

/**
 * POST /v1/acks (a sidecar reports what it applied) and GET /v1/acks (what
 * each connected sidecar applied, like `istioctl proxy-status`, for
 * operators). An ack belongs to the caller's open snapshot watch: the
 * identity and workload from its SVID, the stream by its advertised address.
 * So acks are bounded by the watches and leave with them.
 */
export function ackRoutes(ctx: ApiContext): Routes {
  const { hub, logger } = ctx;

  const record: Handler = async (req, res) => {
    const caller = workloadCaller(req, 'acks');
    // Revocations as the token watch last loaded them: acks come in bursts
    // (every sidecar after every fan-out), and a stat each is not needed for
    // a list that the watch keeps current within milliseconds.
    refuseRevoked(req, caller.spiffeId, ctx.revokedUpTo);
    const ack = (await readJsonBody(req, MAX_ACK_BYTES)) as Partial<SnapshotAck> | null;
    if (
      !shortString(ack?.version) ||
      !shortString(ack.hash) ||
      (ack.status !== 'applied' && ack.status !== 'rejected') ||
      (ack.reason !== undefined && typeof ack.reason !== 'string') ||
      (ack.address !== undefined && !shortString(ack.address)) ||
      (ack.trustBundle !== undefined && !shortString(ack.trustBundle))
    ) {
      throw new BadRequestBodyError(
        400,
        `expected {"workload", "version", "hash", "status": "applied"|"rejected", "reason"?, "address"?, "trustBundle"?} with strings of at most ${MAX_FIELD_CHARS} characters (a reason is cut to ${MAX_ACK_REASON_CHARS}), in at most ${MAX_ACK_BYTES} bytes`,
      );
    }
    if (ack.workload !== undefined && ack.workload !== caller.workload) {
      throw new ForbiddenError(
        `the certificate of ${caller.spiffeId} was issued for workload ${JSON.stringify(caller.workload)}, not ${JSON.stringify(ack.workload)}`,
      );
    }
    const address = ack.address || undefined;
    const { version, hash, status, trustBundle } = ack;
    const reason = ack.reason?.slice(0, MAX_ACK_REASON_CHARS);
    const recorded = hub.recordAck(
      caller,
      {
        version,
        hash,
        status,
        ...(reason === undefined ? {} : { reason }),
        ...(address ? { address } : {}),
        ...(trustBundle === undefined ? {} : { trustBundle }),
      },
      new Date(),
    );
    if (!recorded) {
      throw new NoWatchError(
        `${caller.workload} (${caller.spiffeId}) holds no open snapshot watch${address ? ` for ${address}` : ''}; an ack belongs to one`,
      );
    }
    // Fields named one by one: nothing in the body can stand in for the log's own (time, level, msg, spiffeId).
    if (status === 'rejected') {
      logger.warn('snapshot rejected by sidecar', {
        spiffeId: caller.spiffeId,
        workload: caller.workload,
        address,
        version,
        hash,
        reason,
      });
    }
    res.writeHead(204).end();
  };

  const list: Handler = async (req, res) => {
    operatorIdentity(req, ctx.operators, 'GET /v1/acks');
    sendJson(res, 200, { version: hub.version, acks: hub.acks });
  };

  return { 'POST /v1/acks': record, 'GET /v1/acks': list };
}
