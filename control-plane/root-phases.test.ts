import t from 'tap';
import {
  activate,
  activatesNoSoonerThan,
  nextStep,
  prepare,
  type Roots,
  retire,
  trustedPems,
} from './root-phases.ts';

const OLD = { certPem: 'old root' };
const NEW = { certPem: 'new root' };
const MINUTE = 60_000;
const HOUR = 60 * MINUTE;
const steady: Roots<typeof OLD> = { phase: 'steady', signing: OLD };

t.test(
  'a rotation walks steady, prepared, active and back to steady, with the bundle of each phase',
  async (t) => {
    const start = Date.parse('2026-11-25T10:00:00Z');
    t.same(trustedPems(steady), ['old root'], 'one root before');

    const prepared = prepare(steady, NEW, start, 5 * MINUTE);
    t.equal(prepared.signing, OLD, 'prepared: the old root still signs');
    t.same(trustedPems(prepared), ['old root', 'new root'], 'prepared: the new root is trusted');

    const active = activate(prepared, start + 10 * MINUTE, 24 * HOUR);
    t.equal(active.signing, NEW, 'active: the new root signs');
    t.same(trustedPems(active), ['new root', 'old root'], 'active: the old root is still trusted');
    t.equal(
      active.retireAtMs,
      start + 10 * MINUTE + 24 * HOUR,
      'the old root is trusted for one leaf lifetime after its last signature',
    );

    const done = retire(active, active.retireAtMs);
    t.same(done, { phase: 'steady', signing: NEW });
    t.same(trustedPems(done), ['new root'], 'steady again: only the new root');
  },
);

t.test('a second rotation cannot start while one is under way', async (t) => {
  const prepared = prepare(steady, NEW, 0, MINUTE);
  t.throws(() => prepare(prepared, { certPem: 'third' }, 1, MINUTE), {
    code: 'POSTERN_ROTATION_IN_PROGRESS',
  });
  t.throws(() => prepare(activate(prepared, 2, HOUR), { certPem: 'third' }, 3, MINUTE), {
    code: 'POSTERN_ROTATION_IN_PROGRESS',
  });
});

t.test('only a prepared root can be switched to', async (t) => {
  t.throws(() => activate(steady, 0, HOUR), { code: 'POSTERN_NO_PREPARED_ROOT' });
  const active = activate(prepare(steady, NEW, 0, MINUTE), 1, HOUR);
  t.throws(() => activate(active, 2, HOUR), {
    code: 'POSTERN_NO_PREPARED_ROOT',
    message: /signs already/,
  });
});

t.test('the old root cannot leave while a certificate it signed may be valid', async (t) => {
  const active = activate(prepare(steady, NEW, 0, MINUTE), 10, HOUR);
  t.throws(() => retire(active, 10 + HOUR - 1), { code: 'POSTERN_ROOT_STILL_NEEDED' });
});

t.test(
  'the new root signs once the propagation time has passed and every connected sidecar confirmed it',
  async (t) => {
    const start = 1_000_000;
    const prepared = prepare(steady, NEW, start, 5 * MINUTE);
    const facts = { watchingSinceMs: 0, unconfirmed: 0 };
    t.same(
      nextStep(prepared, { ...facts, nowMs: start + MINUTE }),
      { step: 'wait', untilMs: start + 5 * MINUTE },
      'too early, even with every sidecar confirmed: wait for the propagation time',
    );
    t.same(
      nextStep(prepared, { ...facts, nowMs: start + 5 * MINUTE, unconfirmed: 2 }),
      { step: 'wait' },
      'time enough, but two sidecars have not confirmed: wait for their acks',
    );
    t.same(nextStep(prepared, { ...facts, nowMs: start + 5 * MINUTE }), { step: 'activate' });
  },
);

t.test(
  'after a control-plane restart the propagation time counts again from the restart',
  async (t) => {
    const prepared = prepare(steady, NEW, 0, 5 * MINUTE);
    const restartedAt = 60 * MINUTE;
    t.equal(activatesNoSoonerThan(prepared, restartedAt), restartedAt + 5 * MINUTE);
    t.same(
      nextStep(prepared, {
        nowMs: restartedAt + MINUTE,
        watchingSinceMs: restartedAt,
        unconfirmed: 0,
      }),
      { step: 'wait', untilMs: restartedAt + 5 * MINUTE },
      'no sidecar has reconnected yet, which proves nothing: wait',
    );
  },
);

t.test(
  'the old root leaves at its retirement time, and a steady mesh has nothing to do',
  async (t) => {
    const active = activate(prepare(steady, NEW, 0, MINUTE), MINUTE, HOUR);
    const facts = { watchingSinceMs: 0, unconfirmed: 3 };
    t.same(nextStep(active, { ...facts, nowMs: MINUTE + HOUR - 1 }), {
      step: 'wait',
      untilMs: MINUTE + HOUR,
    });
    t.same(
      nextStep(active, { ...facts, nowMs: MINUTE + HOUR }),
      { step: 'retire' },
      'retirement waits for time alone, not for acks',
    );
    t.same(nextStep(steady, { ...facts, nowMs: 0 }), { step: 'none' });
  },
);
