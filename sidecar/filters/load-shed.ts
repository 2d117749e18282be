import type { LocalReply } from '../http/local-reply.ts';
import type { OverloadGuard } from '../overload.ts';
import type { Filter } from './filter.ts';

const OVERLOADED: LocalReply = Object.freeze({
  status: 503,
  code: 'POSTERN_OVERLOADED',
  message: 'the sidecar is overloaded and sheds new requests; retry shortly',
  headers: Object.freeze({ 'retry-after': '1' }),
});

/** Refuses every request while the guard sheds (sidecar/overload.ts says when); one boolean read otherwise. */
export function loadShed(guard: Pick<OverloadGuard, 'shedding' | 'refused'>): Filter {
  return {
    name: 'load-shed',
    onRequest() {
      if (!guard.shedding) return undefined;
      guard.refused();
      return OVERLOADED;
    },
  };
}
