import t from 'tap';
import {
  containerMemoryLimit,
  DEFAULT_OVERLOAD,
  type LoadReading,
  OverloadGuard,
  processLoad,
} from './overload.ts';

/** A guard over readings the test sets, sampled only when the test says. */
function guardOver(readings: LoadReading[]) {
  const changes: boolean[] = [];
  let next = { lagMs: 0, memoryRatio: 0 };
  const guard = new OverloadGuard((shedding) => changes.push(shedding), {
    read: () => readings.shift() ?? next,
  });
  return {
    guard,
    changes,
    set(reading: LoadReading) {
      next = reading;
    },
  };
}

t.test(
  'the guard sheds when the loop lags or the heap nears its limit, and stops only once both are well back',
  async (t) => {
    const { guard, changes } = guardOver([
      { lagMs: 20, memoryRatio: 0.5 },
      { lagMs: 300, memoryRatio: 0.5 }, // one reading over: a spike, not yet overload
      { lagMs: 20, memoryRatio: 0.5 },
      { lagMs: 300, memoryRatio: 0.5 },
      { lagMs: 250, memoryRatio: 0.5 }, // the second in a row: shedding
      { lagMs: 80, memoryRatio: 0.5 }, // under the shed mark, over the recover mark: still shedding
      { lagMs: 5, memoryRatio: 0.85 }, // the heap over its recover mark: still shedding
      { lagMs: 5, memoryRatio: 0.5 },
      { lagMs: 5, memoryRatio: 0.95 },
      { lagMs: 5, memoryRatio: 0.96 },
    ]);
    t.teardown(() => guard.close());
    const seen: boolean[] = [];
    for (let i = 0; i < 10; i++) {
      guard.sample();
      seen.push(guard.shedding);
    }
    t.same(seen, [false, false, false, false, true, true, true, false, false, true]);
    t.same(changes, [true, false, true], 'told of each change once');
  },
);

t.test('the process reading sees a blocked event loop as lag', async (t) => {
  const load = processLoad();
  t.teardown(() => load.stop());
  load.read();
  await new Promise((resolve) => setTimeout(resolve, 50));
  t.ok(load.read().lagMs < DEFAULT_OVERLOAD.lagShedMs, 'an idle loop does not lag');
  // One long pause (a GC, one slow request) is one late tick: not overload.
  let until = performance.now() + 300;
  while (performance.now() < until);
  await new Promise((resolve) => setTimeout(resolve, 60));
  t.ok(load.read().lagMs < DEFAULT_OVERLOAD.lagShedMs, 'a single pause is not overload');
  // Every turn of the loop 250 ms late, as under more work than it can do.
  for (let turn = 0; turn < 6; turn++) {
    until = performance.now() + 250;
    while (performance.now() < until);
    await new Promise((resolve) => setImmediate(resolve));
  }
  const reading = load.read();
  t.ok(reading.lagMs >= DEFAULT_OVERLOAD.lagShedMs, `lag ${reading.lagMs.toFixed(0)} ms`);
  t.ok(reading.memoryRatio > 0 && reading.memoryRatio < 1);
});

t.test(
  'the memory reading is what the process holds over its memory limit, counted after a collection near the marks',
  async (t) => {
    const { heapUsed, external } = process.memoryUsage();
    const roomy = processLoad((heapUsed + external) * 20);
    t.teardown(() => roomy.stop());
    const low = roomy.read().memoryRatio;
    t.ok(low > 0.01 && low < 0.2, `held is about a twentieth of a limit twenty times it (${low})`);
    // Garbage is not held: 40 MB of Buffers let go, then a limit they would fill.
    let garbage: Buffer[] | undefined = Array.from({ length: 40 }, () => Buffer.alloc(2 ** 20, 1));
    t.ok(garbage.length);
    garbage = undefined;
    const tight = processLoad(heapUsed + external + 30 * 2 ** 20);
    t.teardown(() => tight.stop());
    t.ok(
      tight.read().memoryRatio < DEFAULT_OVERLOAD.memoryShed,
      'Buffers no longer referenced do not count once collected',
    );
    t.equal(containerMemoryLimit(), undefined, 'this machine sets no container memory limit');
  },
);
