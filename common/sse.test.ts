import t from 'tap';
import { formatSseEvent, SseParser } from './sse.ts';

t.test('events split across arbitrary chunks are reassembled; comments are skipped', async (t) => {
  const wire = `: keep-alive\n\n${formatSseEvent('snapshot', '{"a":1}\n{"b":2}')}${formatSseEvent('snapshot', 'x')}`;
  for (const size of [1, 3, 7, wire.length]) {
    const parser = new SseParser();
    const events = [];
    for (let i = 0; i < wire.length; i += size)
      events.push(...parser.push(wire.slice(i, i + size)));
    t.same(
      events,
      [
        { event: 'snapshot', data: '{"a":1}\n{"b":2}' },
        { event: 'snapshot', data: 'x' },
      ],
      `chunks of ${size}`,
    );
  }
});

t.test('CRLF line endings are accepted', async (t) => {
  t.same(new SseParser().push('event: snapshot\r\ndata: 1\r\n\r\n'), [
    { event: 'snapshot', data: '1' },
  ]);
});
