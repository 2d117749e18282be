/**
 * A small Prometheus registry for the admin port's /metrics. Series are keyed
 * by their label values joined once; a request increments existing numbers
 * and allocates nothing once its series exists.
 */
type Labels = Readonly<Record<string, string>>;

function seriesKey(labels: Labels): string {
  let key = '';
  for (const name in labels) key += `${name}="${String(labels[name]).replace(/["\\\n]/g, '_')}",`;
  return key.slice(0, -1);
}

export class Counter {
  readonly name: string;
  readonly help: string;
  readonly #series = new Map<string, number>();
  constructor(name: string, help: string) {
    this.name = name;
    this.help = help;
  }
  inc(labels: Labels, by = 1): void {
    const key = seriesKey(labels);
    this.#series.set(key, (this.#series.get(key) ?? 0) + by);
  }
  render(): string {
    let out = `# HELP ${this.name} ${this.help}\n# TYPE ${this.name} counter\n`;
    for (const [key, value] of this.#series) out += `${this.name}{${key}} ${value}\n`;
    return out;
  }
  toJSON(): Record<string, number> {
    return Object.fromEntries(this.#series);
  }
}

export class Histogram {
  readonly name: string;
  readonly help: string;
  readonly #buckets: readonly number[];
  readonly #series = new Map<string, { counts: number[]; sum: number; count: number }>();
  constructor(name: string, help: string, buckets: readonly number[]) {
    this.name = name;
    this.help = help;
    this.#buckets = buckets;
  }
  observe(labels: Labels, value: number): void {
    const key = seriesKey(labels);
    let series = this.#series.get(key);
    if (!series) {
      series = { counts: this.#buckets.map(() => 0), sum: 0, count: 0 };
      this.#series.set(key, series);
    }
    for (let i = 0; i < this.#buckets.length; i++)
      if (value <= this.#buckets[i]!) series.counts[i]!++;
    series.sum += value;
    series.count++;
  }
  render(): string {
    let out = `# HELP ${this.name} ${this.help}\n# TYPE ${this.name} histogram\n`;
    for (const [key, series] of this.#series) {
      const sep = key ? ',' : '';
      this.#buckets.forEach((le, i) => {
        out += `${this.name}_bucket{${key}${sep}le="${le}"} ${series.counts[i]}\n`;
      });
      out += `${this.name}_bucket{${key}${sep}le="+Inf"} ${series.count}\n`;
      out += `${this.name}_sum{${key}} ${series.sum}\n${this.name}_count{${key}} ${series.count}\n`;
    }
    return out;
  }
}

/** The sidecar's metrics. Names follow the OpenTelemetry HTTP conventions as Prometheus exports them. */
export class SidecarMetrics {
  readonly requests = new Counter(
    'postern_requests_total',
    'Requests handled, by direction, decision and status code.',
  );
  readonly duration = new Histogram(
    'http_server_request_duration_seconds',
    'Duration of requests through the sidecar, from first byte received to response end.',
    [0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10],
  );
  readonly snapshots = new Counter(
    'postern_snapshots_total',
    'Snapshots received, by result (applied, rejected).',
  );
  readonly decisions = new Counter(
    'postern_authz_decisions_total',
    'Authorization decisions, by decision (allow, deny) and mode (enforce, audit: denied but let through).',
  );
  readonly handshakeFailures = new Counter(
    'postern_tls_handshake_failures_total',
    'Inbound TLS handshakes refused (no, expired or untrusted client certificate), by listener.',
  );
  readonly connectionsRefused = new Counter(
    'postern_connections_refused_total',
    'Connections closed on accept because the listener held its maximum, by listener.',
  );

  render(): string {
    return (
      this.requests.render() +
      this.duration.render() +
      this.snapshots.render() +
      this.decisions.render() +
      this.handshakeFailures.render() +
      this.connectionsRefused.render()
    );
  }
}
