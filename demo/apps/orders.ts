// Demo app "orders": a plain HTTP service that knows nothing of mTLS. It
// shows which caller its sidecar vouched for (x-postern-principal).
import { createServer } from 'node:http';

const ORDERS = [
  { id: '17', item: 'teapot', quantity: 1 },
  { id: '18', item: 'cups', quantity: 6 },
];

const server = createServer((req, res) => {
  const caller = req.headers['x-postern-principal'] ?? null;
  const reply = (status: number, body: unknown) => {
    res.writeHead(status, { 'content-type': 'application/json' });
    res.end(JSON.stringify({ ...(body as object), seenCaller: caller }));
  };
  const path = (req.url ?? '/').split('?')[0]!;
  if (path === '/orders') return reply(200, { orders: ORDERS });
  const one = /^\/orders\/([^/]+)$/.exec(path);
  if (one) {
    const order = ORDERS.find((o) => o.id === one[1]);
    return order ? reply(200, { order }) : reply(404, { error: 'no such order' });
  }
  if (path === '/admin')
    return reply(200, { secret: 'the admin page (policy should never let you see this)' });
  reply(404, { error: `no route ${path}` });
});

server.listen(Number(process.env.PORT ?? 0), '127.0.0.1', () => {
  process.stdout.write(`orders app listening on ${JSON.stringify(server.address())}\n`);
});
process.on('SIGTERM', () => server.close(() => process.exit(0)));
