/**
 * One run's results as the harness writes them: JSON (everything), a
 * markdown report (tables and the budget) and an SVG chart of latency
 * percentiles per target.
 */
import { mkdir, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import {
  type BenchResults,
  type BudgetLine,
  corePerKiloRps,
  type Rss,
  requestsPerCpuSecond,
} from './budget.ts';
import type { Combined, Measured } from './measure.ts';

const PERCENTILES = ['p50', 'p90', 'p99', 'p999'] as const;
const LABEL: Record<(typeof PERCENTILES)[number], string> = {
  p50: 'p50',
  p90: 'p90',
  p99: 'p99',
  p999: 'p99.9',
};

const fixed = (value: number | undefined, digits = 2) =>
  value === undefined || !Number.isFinite(value) ? '–' : value.toFixed(digits);

function steadyTargets(r: BenchResults): Measured[] {
  return [
    r.direct,
    ...(r.nodeFloor ? [r.nodeFloor.steady] : []),
    r.postern,
    ...(r.mesh ? [r.mesh] : []),
    ...(r.gateway ? [r.gateway] : []),
    ...(r.nginx ? [r.nginx] : []),
  ];
}

/** The spread of the headline figures over the rounds, when there were several. */
function spreadLine(r: BenchResults): string {
  const parts = steadyTargets(r).flatMap((m) => {
    const combined = m as Partial<Combined>;
    if (!combined.spread || (combined.rounds ?? 1) < 2) return [];
    const { p50, p99 } = combined.spread;
    return [
      `${m.target} p50 ${fixed(p50[0])}–${fixed(p50[1])}, p99 ${fixed(p99[0])}–${fixed(p99[1])}`,
    ];
  });
  return parts.length
    ? `Medians of ${(r.direct as Combined).rounds} interleaved rounds; spread (min–max, ms): ${parts.join('; ')}.`
    : '';
}

export function budgetTable(lines: readonly BudgetLine[]): string {
  const rows = lines.map(
    (l) =>
      `| ${l.what} | ${l.budget} | ${l.measured} | ${l.pass === undefined ? 'n/a' : l.pass ? 'PASS' : 'FAIL'} | ${l.nodeFloor} |`,
  );
  return [
    '| what | budget | Postern | result | Node floor |',
    '| --- | --- | --- | --- | --- |',
    ...rows,
  ].join('\n');
}

/** A proxy's first seconds after ready, as one line. */
function coldLine(name: string, cold: Measured, seconds: number): string {
  return `${name} cold (first ${seconds} s after ready, no warm-up): p50 ${fixed(cold.latencyMs.p50)}, p99 ${fixed(cold.latencyMs.p99)}, p99.9 ${fixed(cold.latencyMs.p999)}, max ${fixed(cold.latencyMs.max)} ms.`;
}

function rssLine(name: string, rss: Rss): string {
  return `${name} RSS: ${fixed(rss.atStartMb, 0)} MB at ready, ${fixed(rss.steadyMb, 0)} MB steady${rss.afterSaturationMb === undefined ? '' : `, ${fixed(rss.afterSaturationMb, 0)} MB after saturation`}.`;
}

export function markdownReport(r: BenchResults, lines: readonly BudgetLine[]): string {
  const loadSeconds = r.load.seconds + r.load.warmupSeconds;
  const latency = steadyTargets(r).map(
    (m) =>
      `| ${m.target} | ${PERCENTILES.map((p) => fixed(m.latencyMs[p])).join(' | ')} | ${PERCENTILES.map((p) => (m === r.direct ? '–' : fixed(m.latencyMs[p] - r.direct.latencyMs[p]))).join(' | ')} | ${m.proxyCpuSeconds === undefined ? '–' : fixed(corePerKiloRps(m, r.load.rate, loadSeconds), 3)} | ${fixed(m.proxyRssMb, 0)} | ${m.errors} |`,
  );
  const sat = r.saturation;
  const saturation = sat
    ? [
        sat.direct,
        ...(sat.nodeFloor ? [sat.nodeFloor] : []),
        sat.postern,
        ...(sat.gateway ? [sat.gateway] : []),
        ...(sat.nginx ? [sat.nginx] : []),
      ].map(
        (m) =>
          `| ${m.target} | ${fixed(m.throughput, 0)} | ${m.proxyCpuSeconds === undefined ? '–' : fixed(requestsPerCpuSecond(m), 0)} | ${fixed(m.latencyMs.p99)} | ${m.errors} |`,
      )
    : [];
  return `# Latency harness: ${r.startedAt}

\`npm run bench\` on ${r.machine.cpus} cores, Node ${r.machine.node}; ${r.machine.pinning}${r.machine.binary ? `; sidecars from ${r.machine.binary}` : ''}.
Open loop at ${r.load.rate} rps over ${r.load.connections} keep-alive connections, ${r.load.responseBytes}-byte responses,
${r.load.warmupSeconds} s warm-up then ${r.load.seconds} s measured, each request timed from its intended send time.
Postern: one inbound sidecar hop (mTLS, one allow route); the mesh hop adds the caller's sidecar (plain HTTP into its outbound port, mTLS between the two sidecars; CPU and RSS are both sidecars'); the gateway is \`postern gateway\` (TLS from outside the mesh, the same JWT check, an HTTPRoute) in front of orders' sidecar, two proxies as the mesh hop (CPU and RSS are both). nginx: the same mTLS termination and keep-alive proxying.
Node floor: the least a Node mTLS proxy can do (node:https verifying the client certificate, each request dispatched to the app through an undici pool and written straight back), with the sidecar's V8 settings and no Postern in it, measured the same way; its column in the budget shows what Node itself costs on each line, and the gap to Postern's is what Postern adds (PASS/FAIL judges Postern only).

## Budget

${budgetTable(lines)}

## Latency (ms) and cost at ${r.load.rate} rps

| target | ${PERCENTILES.map((p) => LABEL[p]).join(' | ')} | ${PERCENTILES.map((p) => `+${LABEL[p]}`).join(' | ')} | core per 1k rps | RSS MB | errors |
| --- | ${PERCENTILES.map(() => '---').join(' | ')} | ${PERCENTILES.map(() => '---').join(' | ')} | --- | --- | --- |
${latency.join('\n')}

${spreadLine(r)}
${coldLine('Postern', r.cold, r.load.seconds)}
${r.nodeFloor ? `${coldLine('Node floor', r.nodeFloor.cold, r.load.seconds)}\n` : ''}The generator's own send lag at p99: ${fixed(r.direct.sendLagP99Ms)} ms (a result below that is the generator's, not the target's).
${rssLine('Postern', r.rss)}
${r.nodeFloor ? `${rssLine('Node floor', r.nodeFloor.rss)}\n` : ''}${
  saturation.length
    ? `
## Saturation (closed loop, ${r.load.connections * 2} connections)

The generator shares a core with the app, so raw throughput is capped by it (the direct row is its ceiling); proxies are compared per second of their own CPU.

| target | requests/s | requests per proxy CPU-second | p99 ms | errors |
| --- | --- | --- | --- | --- |
${saturation.join('\n')}
`
    : ''
}
## Authorization decision time (pure function)

| routes | compile ms | ns per decision |
| --- | --- | --- |
${r.decision.map((d) => `| ${d.routes} | ${fixed(d.compileMs, 1)} | ${fixed(d.nsPerDecision, 0)} |`).join('\n')}
${
  r.jwt?.length
    ? `
## JWT verification (pure function)

A token not seen before is decoded and its signature and claims checked; one verified before is found in the verifier's cache (keyed by the token), which is what a caller reusing its access token costs.

| algorithm | not seen before, µs | verified before, ns |
| --- | --- | --- |
${r.jwt.map((j) => `| ${j.alg} | ${fixed(j.uncachedUs, 1)} | ${fixed(j.cachedNs, 0)} |`).join('\n')}
`
    : ''
}`;
}

/** Grouped bars: one group per percentile, one bar per target (log scale, so the floor stays visible). */
export function latencyChart(r: BenchResults): string {
  const targets = steadyTargets(r);
  const colours = ['#7f8c8d', '#8e44ad', '#2e86de', '#27ae60', '#e67e22'];
  const width = 640;
  const height = 320;
  const left = 60;
  const bottom = 270;
  const top = 30;
  const max = Math.max(...targets.flatMap((m) => PERCENTILES.map((p) => m.latencyMs[p])), 1);
  const minLog = Math.log10(0.01);
  const maxLog = Math.log10(max * 1.5);
  const y = (value: number) =>
    bottom - ((Math.log10(Math.max(value, 0.01)) - minLog) / (maxLog - minLog)) * (bottom - top);
  const groupWidth = (width - left - 20) / PERCENTILES.length;
  const barWidth = (groupWidth - 20) / targets.length;
  const bars = PERCENTILES.flatMap((p, g) =>
    targets.map((m, t) => {
      const x = left + g * groupWidth + 10 + t * barWidth;
      const value = m.latencyMs[p];
      return `<rect x="${x.toFixed(1)}" y="${y(value).toFixed(1)}" width="${(barWidth - 2).toFixed(1)}" height="${(bottom - y(value)).toFixed(1)}" fill="${colours[t % colours.length]}"><title>${m.target} ${LABEL[p]} ${value.toFixed(3)} ms</title></rect>`;
    }),
  );
  const ticks = [0.01, 0.1, 1, 10, 100, 1000]
    .filter((v) => Math.log10(v) <= maxLog)
    .map(
      (v) =>
        `<line x1="${left}" x2="${width - 20}" y1="${y(v).toFixed(1)}" y2="${y(v).toFixed(1)}" stroke="#ddd"/><text x="${left - 6}" y="${(y(v) + 4).toFixed(1)}" text-anchor="end">${v}</text>`,
    );
  const labels = PERCENTILES.map(
    (p, g) =>
      `<text x="${(left + g * groupWidth + groupWidth / 2).toFixed(1)}" y="${bottom + 18}" text-anchor="middle">${LABEL[p]}</text>`,
  );
  const legend = targets.map(
    (m, t) =>
      `<rect x="${left + t * 120}" y="${height - 22}" width="12" height="12" fill="${colours[t % colours.length]}"/><text x="${left + t * 120 + 16}" y="${height - 12}">${m.target}</text>`,
  );
  return `<svg xmlns="http://www.w3.org/2000/svg" width="${width}" height="${height}" font-family="sans-serif" font-size="12">
<title>Latency percentiles per target at ${r.load.rate} rps</title>
<text x="${left}" y="18">Latency at ${r.load.rate} rps, ms (log scale), from the intended send time</text>
${ticks.join('\n')}
${bars.join('\n')}
${labels.join('\n')}
${legend.join('\n')}
</svg>
`;
}

/** Writes bench.json, bench.md and bench.svg into `dir`; returns their paths. */
export async function writeReports(
  dir: string,
  r: BenchResults,
  lines: readonly BudgetLine[],
): Promise<string[]> {
  await mkdir(dir, { recursive: true });
  const files: [string, string][] = [
    ['bench.json', `${JSON.stringify({ ...r, budget: lines }, null, 2)}\n`],
    ['bench.md', markdownReport(r, lines)],
    ['bench.svg', latencyChart(r)],
  ];
  for (const [name, content] of files) await writeFile(join(dir, name), content);
  return files.map(([name]) => join(dir, name));
}
