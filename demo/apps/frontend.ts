// Demo app "frontend": calls orders by its service name, through its
// sidecar's outbound listener (HTTP_PROXY), in plain HTTP. The sidecars add
// mTLS and identity; this code contains none of it.
import { createServer, type IncomingHttpHeaders } from 'node:http';
import { EnvHttpProxyAgent, request } from 'undici';

const proxy = new EnvHttpProxyAgent();
const ORDERS_URL = process.env.ORDERS_URL ?? 'http://orders';

// The W3C trace context of the request being served goes on to orders, as an
// OpenTelemetry-instrumented app's HTTP client does; then the trace the
// sidecars export runs client -> frontend -> orders in one piece.
const TRACE_CONTEXT = ['traceparent', 'tracestate'] as const;

async function callOrders(
  path: string,
  incoming: IncomingHttpHeaders,
): Promise<{ status: number; body: unknown }> {
  const headers: Record<string, string> = {};
  for (const name of TRACE_CONTEXT) {
    const value = incoming[name];
    if (typeof value === 'string') headers[name] = value;
  }
  const response = await request(`${ORDERS_URL}${path}`, { dispatcher: proxy, headers });
  const text = await response.body.text();
  try {
    return { status: response.statusCode, body: JSON.parse(text) };
  } catch {
    return { status: response.statusCode, body: text };
  }
}

const server = createServer(async (req, res) => {
  const path = (req.url ?? '/').split('?')[0]!;
  const caller = req.headers['x-postern-principal'] ?? null;
  // "/" lists orders; "/admin" asks orders for its admin page, which orders'
  // policy denies to everyone: the 403 comes from orders' sidecar.
  const upstreamPath = path === '/' ? '/orders' : path === '/admin' ? '/admin' : undefined;
  if (!upstreamPath) {
    res.writeHead(404, { 'content-type': 'application/json' });
    res.end(JSON.stringify({ error: `no route ${path}` }));
    return;
  }
  try {
    const orders = await callOrders(upstreamPath, req.headers);
    // Relay orders' status, so a denial by orders' sidecar shows as the 403 it is.
    res.writeHead(orders.status, { 'content-type': 'application/json' });
    res.end(
      JSON.stringify(
        { app: 'frontend', seenCaller: caller, ordersStatus: orders.status, orders: orders.body },
        null,
        2,
      ),
    );
  } catch (error) {
    res.writeHead(502, { 'content-type': 'application/json' });
    res.end(JSON.stringify({ app: 'frontend', error: (error as Error).message }));
  }
});

server.listen(Number(process.env.PORT ?? 0), '127.0.0.1', () => {
  process.stdout.write(`frontend app listening on ${JSON.stringify(server.address())}\n`);
});
process.on('SIGTERM', () => server.close(() => process.exit(0)));
