/**
 * The scale run as reports: control-plane-scale.json (everything) and
 * control-plane-scale.md (the tables, per-edit detail and the projection).
 */
import { mkdir, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { median } from '../statistics.ts';
import { CALLERS, REPLICAS } from './mesh.ts';
import { ANSWERED, CLUSTER_PODS, headline, type Projection } from './projection.ts';
import type { Traffic } from './protocol.ts';
import type { EditResult, ScaleRun } from './run.ts';

export interface ScaleReport {
  readonly startedAt: string;
  readonly command: string;
  readonly machine: {
    readonly cpus: number;
    readonly model: string;
    readonly node: string;
    readonly heapLimitMb: number;
    readonly commit: string;
    /** What the control plane ran from: the source, or the bundle built from it. */
    readonly binary: string;
  };
  readonly edits: number;
  readonly gapSeconds: number;
  readonly pinned: boolean;
  readonly runs: readonly ScaleRun[];
  readonly projection: Projection | undefined;
}

/** Node's default keepAliveTimeout, which the control plane's API server keeps. */
const ACK_KEEP_ALIVE_SECONDS = 5;

const count = (n: number) => Math.round(n).toLocaleString('en-US');
const seconds = (s: number | undefined) =>
  s === undefined || !Number.isFinite(s) ? '–' : s < 10 ? `${s.toFixed(2)} s` : `${s.toFixed(1)} s`;
const ms = (value: number) =>
  !Number.isFinite(value) ? '–' : value < 1000 ? `${value.toFixed(0)} ms` : seconds(value / 1000);
const mb = (value: number) =>
  value >= 1024 ? `${(value / 1024).toFixed(1)} GB` : `${value.toFixed(value < 10 ? 2 : 0)} MB`;
const exponent = (e: number) => `n^${e.toFixed(2)}`;

/** Failed acks by reason, summed over `traffic`: "12 (TLS handshake cut by the control plane 10, ...)". */
function failures(traffic: readonly Traffic[]): string {
  const total = traffic.reduce((sum, t) => sum + t.ackFailures, 0);
  const reasons = new Map<string, number>();
  for (const t of traffic)
    for (const [reason, n] of Object.entries(t.ackFailureReasons))
      reasons.set(reason, (reasons.get(reason) ?? 0) + n);
  const detail = [...reasons]
    .sort((a, b) => b[1] - a[1])
    .map(([reason, n]) => `${reason} ${count(n)}`);
  return total ? `${count(total)} (${detail.join(', ')})` : '0';
}

function connectTable(runs: readonly ScaleRun[]): string {
  const rows = runs.map((r) => {
    const c = r.connect;
    const opened =
      c.openedSeconds === undefined
        ? `not within ${c.deadlineSeconds} s (${count(c.opened)})`
        : seconds(c.openedSeconds);
    const whole = c.complete
      ? seconds(c.convergedSeconds)
      : `not within ${c.deadlineSeconds} s (${count(c.converged)}); no edits measured`;
    return `| ${count(r.sidecars)} | ${count(r.services)} × ${r.replicas} | ${seconds(r.certificates.seconds)} | ${opened} | ${whole} | ${count(c.traffic.snapshots)} | ${count(c.traffic.reconnects)} | ${failures([c.traffic])} | ${count(c.listenOverflows)} | ${seconds(c.controlPlaneCpuSeconds)} | ${seconds(c.simulatorCpuSeconds)} | ${mb(r.memory.baselineMb)} | ${mb(r.memory.idleMb)} | ${r.memory.perSidecarKb.toFixed(0)} KB | ${mb(r.memory.simulatorMb)} |`;
  });
  return [
    '| sidecars | services × replicas | certificates (one CSR per service) | all watches open | all registries whole | snapshots pushed | reconnects | failed acks | accept-queue drops | control-plane CPU | simulator CPU | control-plane RSS, no sidecar | RSS, N idle | RSS per sidecar | simulator RSS |',
    '| ---: | ---: | ---: | ---: | ---: | ---: | ---: | --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: |',
    ...rows,
  ].join('\n');
}

function editTable(runs: readonly ScaleRun[]): string {
  const rows = runs.map((r) => {
    const edits = r.edits;
    const h = headline(r);
    const middle = (pick: (e: EditResult) => number) => median(edits.map(pick));
    const sum = (pick: (e: EditResult) => number) => edits.reduce((total, e) => total + pick(e), 0);
    const worst = Math.max(...edits.map((e) => e.ackedMs.max));
    return `| ${count(r.sidecars)} | ${edits.length} | ${count(sum((e) => e.applied))} / ${count(sum((e) => e.recorded))} of ${count(r.sidecars * edits.length)} | ${failures(edits.map((e) => e.traffic))} | ${count(middle((e) => e.listenOverflows))} | ${ms(middle((e) => e.receivedMs.p50))} | ${ms(middle((e) => e.ackedMs.p50))} | ${ms(middle((e) => e.ackedMs.p99))} | ${seconds(h.lastAckSeconds)} / ${ms(worst)} | ${seconds(h.cpuSecondsPerEdit)} | ${seconds(h.simulatorCpuSecondsPerEdit)} | ${mb(h.bytesPerEdit / 1048576)} |`;
  });
  return [
    '| sidecars | edits | acks answered / recorded by the control plane | failed acks | accept-queue drops per edit | snapshot arrives, p50 | ack answered, p50 | ack answered, p99 | last ack: median / worst | control-plane CPU per edit | simulator CPU per edit | pushed per edit |',
    '| ---: | ---: | ---: | --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |',
    ...rows,
  ].join('\n');
}

/** Runs where the simulator, not the control plane, set the pace of an edit: their latencies are upper bounds. */
function paceNotes(runs: readonly ScaleRun[]): string {
  return runs
    .map((r) => ({ r, h: headline(r) }))
    .filter(({ h }) => h.simulatorCpuSecondsPerEdit >= 0.5 * h.lastAckSeconds)
    .map(
      ({ r, h }) =>
        `At ${count(r.sidecars)} sidecars the simulator spent ${seconds(h.simulatorCpuSecondsPerEdit)} of CPU per edit against a last ack at ${seconds(h.lastAckSeconds)} (its one core does all N sidecars' TLS): it set the pace, so these latencies are upper bounds on what the control plane would show N real sidecars, and its failed acks partly its own.`,
    )
    .join('\n\n');
}

function editDetail(run: ScaleRun): string {
  const rows = run.edits.map(
    (e) =>
      `| ${e.edit} | ${count(e.applied)} | ${count(e.recorded)} | ${failures([e.traffic])} | ${e.rejected} | ${count(e.listenOverflows)} | ${ms(e.receivedMs.p50)} | ${ms(e.receivedMs.max)} | ${ms(e.ackedMs.p50)} | ${ms(e.ackedMs.p99)} | ${ms(e.ackedMs.max)} | ${seconds(e.controlPlaneCpuSeconds)} | ${seconds(e.simulatorCpuSeconds)} | ${mb(e.traffic.bytes / 1048576)} |`,
  );
  return [
    `### ${count(run.sidecars)} sidecars, per edit`,
    '',
    '| edit | acks answered | recorded | failed acks | rejected | accept-queue drops | arrives p50 | arrives last | ack p50 | ack p99 | last ack | control-plane CPU | simulator CPU | pushed |',
    '| ---: | ---: | ---: | --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |',
    ...rows,
  ].join('\n');
}

function projectionSection(report: ScaleReport): string {
  const p = report.projection;
  const heading = `## ${count(CLUSTER_PODS)} pods: a linear projection`;
  if (!p) return `${heading}\n\nNone: no run got all its sidecars connected.\n`;
  const e = p.edits;
  const growth = [
    p.growth.memory &&
      `control-plane memory over its baseline grew as ${exponent(p.growth.memory.exponent)} from ${count(p.growth.memory.from)} to ${count(p.growth.memory.to)} sidecars`,
    p.growth.cpuPerEdit &&
      `control-plane CPU per edit as ${exponent(p.growth.cpuPerEdit.exponent)} from ${count(p.growth.cpuPerEdit.from)} to ${count(p.growth.cpuPerEdit.to)}`,
    p.growth.reconnect &&
      `the time until every registry was whole after all sidecars connected at once as ${exponent(p.growth.reconnect.exponent)} from ${count(p.growth.reconnect.from)} to ${count(p.growth.reconnect.to)}`,
  ].filter(Boolean);
  const rows = [
    `| control-plane RSS (baseline + RSS per sidecar × pods; ${count(p.memoryFrom)}-sidecar run) | ${mb(p.rssMb)} |`,
    `| connections while an edit's acks are in flight | ${count(p.connections)} |`,
    `| every sidecar reconnecting at once (a control-plane restart) until all registries are whole (${count(p.memoryFrom)}-sidecar run) | ${seconds(p.reconnectSeconds)} |`,
    `| certificates, one CSR per pod, at the rate measured | ${seconds(p.certificatesSeconds)} |`,
    ...(e
      ? [
          `| one edit: control-plane CPU (${count(e.from)}-sidecar run; a floor for save to last ack, as it is spent in one process) | ${seconds(e.cpuSecondsPerEdit)} |`,
          `| one edit: save to last ack (${count(e.from)}-sidecar run, where the simulator's CPU set the pace) | ${seconds(e.lastAckSeconds)} |`,
          `| one edit: bytes pushed | ${mb(e.megabytesPerEdit)} |`,
        ]
      : []),
  ];
  return `${heading}

Arithmetic, not measurement: the figures of one run times ${count(CLUSTER_PODS)} / N, for one control-plane replica and the same mesh shape (registries stay ${REPLICAS * CALLERS} entries). Per-edit figures come from the largest run in which at least ${ANSWERED * 100}% of acks were answered${e ? ` (${count(e.from)} sidecars)` : ' (none was)'}: where most acks failed the control plane did less than an edit needs.

| what | ${count(CLUSTER_PODS)} pods, linear |
| --- | ---: |
${rows.join('\n')}
${growth.length ? `\nGrowth seen: ${growth.join('; ')} (n^1.00 is linear; above it, the linear figures are a floor).\n` : ''}
Where each limit is reached, by the same arithmetic (the first row is what breaks first):

| limit | reached at pods | why |
| --- | ---: | --- |
${p.limits.map((l) => `| ${l.what} | ${count(l.pods)} | ${l.why} |`).join('\n')}
`;
}

export function markdownReport(report: ScaleReport): string {
  const m = report.machine;
  return `# Control-plane scale, simulated: ${report.startedAt}

\`${report.command}\` on ${m.cpus} cores (${m.model}), Node ${m.node}, commit ${m.commit}, the control plane run from \`${m.binary}\`. ${
    report.pinned
      ? 'The control plane is pinned to core 0 and the simulator to core 1 (taskset).'
      : 'No pinning.'
  } What the figures mean, and what they led to: \`control-plane-scale-findings.md\` beside this report (hand-written, not regenerated).

## What runs

- **Control plane**: \`postern control-plane\` as its own process over a folder of RoutePolicy files, \`--max-connections\` raised to 2 × N + 64 (or left at its default 4,096 when that is more): each sidecar holds its watch and, while it acks, a second connection. Everything else at its defaults: 50 ms debounce of file events, fan-outs at least 100 ms apart, 15 s keep-alives.
- **Simulator**: one Node process holding all N sidecars, each made of the real sidecar's \`ControlPlaneClient\` (its own undici Agent and mTLS connections) and \`SnapshotWatch\` (SSE parsing, the same ack body, backoff): it watches \`GET /v1/snapshots\` with its own advertised address (127.0.0.1, a distinct port each) and acks every snapshot through \`POST /v1/acks\`. One SVID per service identity, bought with the service's bootstrap token through \`POST /v1/certificates\`; its replicas present it. Each distinct snapshot is validated once by the sidecar's \`SnapshotState\`, not N times.
- **Mesh**: N/${REPLICAS} services × ${REPLICAS} replicas in one namespace. Service i's RoutePolicy admits services i+1…i+${CALLERS} by SPIFFE ID, so each sidecar's registry holds ${REPLICAS * CALLERS} endpoints at any N. A platform policy with no selector (every workload) lets Prometheus scrape \`/metrics\` and grants on-call a just-in-time \`/debug\` route.
- **Edit**: saving the platform policy with the on-call grant's expiry moved by an hour, so every sidecar gets a new snapshot and no registry changes. ${report.edits} edits per N, each after ${report.gapSeconds} s of quiet${
    report.gapSeconds >= ACK_KEEP_ALIVE_SECONDS
      ? ": longer than the control plane's keep-alive of idle connections, so each edit's acks open new TLS connections, as when edits are minutes apart"
      : ", shorter than the control plane's keep-alive of idle connections, so acks may reuse the previous edit's connections"
  }.
- **Measured**: latency from the end of the save to each snapshot's arrival in the simulator and to the control plane's answer to each ack (the ack is recorded before it is answered; GET /v1/acks is checked after every edit); control-plane CPU from /proc/PID/stat, RSS from /proc/PID/status (RSS per sidecar: idle RSS with N connected minus RSS before any connected, over N); bytes: the SSE stream bytes the sidecars received (before TLS); failed acks by the error the sidecar's client saw; accept-queue drops: the kernel's ListenOverflows counter (machine-wide), connections dropped because a listener's accept queue was full.

## Connect and memory

All N watches opened at once, as after a control-plane restart.

${connectTable(report.runs)}

${report.runs.map((r) => `The ${count(r.sidecars)}-sidecar run took ${seconds(r.wallSeconds)} from the simulator's start; every other process on the machine used ${seconds(Math.max(0, r.otherCpuSeconds))} of CPU meanwhile.`).join(' ')}

## Policy edits: save to ack

Per N: each edit's p50 and p99 over its sidecars, then the median over the edits; last ack: the slowest sidecar's ack per edit.

${editTable(report.runs)}

${paceNotes(report.runs)}

${report.runs.map(editDetail).join('\n\n')}

${projectionSection(report)}`;
}

/** The tables the command prints. */
export function consoleSummary(report: ScaleReport): string {
  return `${connectTable(report.runs)}\n\n${editTable(report.runs)}\n`;
}

export async function writeReports(dir: string, report: ScaleReport): Promise<string[]> {
  await mkdir(dir, { recursive: true });
  const files: [string, string][] = [
    ['control-plane-scale.json', `${JSON.stringify(report, null, 2)}\n`],
    ['control-plane-scale.md', markdownReport(report)],
  ];
  for (const [name, content] of files) await writeFile(join(dir, name), content);
  return files.map(([name]) => join(dir, name));
}
