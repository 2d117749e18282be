import t from 'tap';
import { Counter, Histogram } from './metrics.ts';

t.test(
  'a counter keeps one series per combination of label values, in the order first seen',
  (t) => {
    const requests = new Counter('requests_total', 'Requests.', ['direction', 'code']);
    requests.inc('inbound', 200);
    requests.inc('inbound', 200);
    requests.inc('inbound', 503);
    requests.inc('outbound', 200);
    t.same(requests.toJSON(), {
      'direction="inbound",code="200"': 2,
      'direction="inbound",code="503"': 1,
      'direction="outbound",code="200"': 1,
    });
    t.equal(
      requests.render(),
      '# HELP requests_total Requests.\n# TYPE requests_total counter\n' +
        'requests_total{direction="inbound",code="200"} 2\n' +
        'requests_total{direction="inbound",code="503"} 1\n' +
        'requests_total{direction="outbound",code="200"} 1\n',
    );
    t.end();
  },
);

t.test('label values cannot break out of their quotes in the exposition format', (t) => {
  const counter = new Counter('c', 'C.', ['route']);
  counter.inc('a"b\\c\nd');
  t.match(counter.render(), 'c{route="a_b_c_d"} 1');
  t.end();
});

t.test('a histogram counts each observation into every bucket at or above it', (t) => {
  const duration = new Histogram('d', 'D.', ['direction'], [0.01, 0.1]);
  duration.observe(0.005, 'inbound');
  duration.observe(0.05, 'inbound');
  duration.observe(1, 'inbound');
  const text = duration.render();
  t.match(text, 'd_bucket{direction="inbound",le="0.01"} 1\n');
  t.match(text, 'd_bucket{direction="inbound",le="0.1"} 2\n');
  t.match(text, 'd_bucket{direction="inbound",le="+Inf"} 3\n');
  t.match(text, 'd_count{direction="inbound"} 3\n');
  t.end();
});

t.test('a metric without labels has one series', (t) => {
  const total = new Counter('t', 'T.', []);
  total.inc();
  total.inc();
  t.equal(total.render().split('\n')[2], 't{} 2');
  t.end();
});
