import t from 'tap';
import { LogThrottle } from './log-throttle.ts';

t.test(
  'a throttled line is due at once, then once per interval with the count since',
  async (t) => {
    const throttle = new LogThrottle(1_000);
    t.equal(throttle.due(0), 1, 'the first at once');
    t.equal(throttle.due(10), undefined);
    t.equal(throttle.due(999), undefined);
    t.equal(throttle.due(1_000), 3, 'one line for the three since the last');
    t.equal(throttle.due(1_500), undefined);
    t.equal(throttle.due(5_000), 2);
  },
);
