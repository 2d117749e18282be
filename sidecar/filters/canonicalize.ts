import { canonicalTarget } from '../../common/canonical-path.ts';
import type { Filter } from './filter.ts';

/** Canonicalises the request target; a target that could be read two ways gets 400 and a closed connection. */
export const canonicalize: Filter = {
  name: 'canonicalize',
  onRequest(exchange) {
    const result = canonicalTarget(exchange.req.url ?? '');
    if (!result.ok) {
      return {
        status: 400,
        code: 'POSTERN_BAD_REQUEST_TARGET',
        message: result.reason,
        close: true,
      };
    }
    exchange.target = result.target;
    return undefined;
  },
};
