/**
 * Scores the exfiltration detectors on the labelled scenarios
 * (generate.ts): each usage log replayed by `postern usage replay` as a
 * process, its alerts matched against the scenario's label.
 *
 *   npm run scenarios        # prints the README's table
 *
 * An alert is a true positive when it names the incident's caller and its
 * route (or destination) and its window starts between the incident's start
 * and an hour after its end; every other alert is a false positive.
 * Time to detect: from the incident's start to the end of the first window
 * that alerted on it (an alert exists once its window has closed).
 */
import { spawn } from 'node:child_process';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { CHILD_NODE_ARGS, POSTERN_BIN } from '../../cli/processes.ts';
import type { Alert } from '../../common/usage.ts';
import { type Incident, type Scenario, WINDOW_SECONDS, writeScenarios } from './generate.ts';

const MATCH_AFTER_MS = 3600_000;

export interface Score {
  readonly scenario: Scenario;
  readonly alerts: readonly Alert[];
  readonly truePositives: number;
  readonly falsePositives: number;
  /** Detected incidents / incidents (attacks only). */
  readonly recall?: number;
  readonly precision?: number;
  readonly timeToDetectMs?: number;
  /** The detectors whose alerts matched the incident. */
  readonly detectors: readonly string[];
}

function matches(alert: Alert, incident: Incident): boolean {
  const start = Date.parse(alert.windowStart);
  if (start < incident.fromMs || start > incident.toMs + MATCH_AFTER_MS) return false;
  if (alert.principal !== incident.principal) return false;
  if (incident.destination) return alert.destination === incident.destination;
  return alert.workload === incident.workload && alert.route === incident.route;
}

async function replay(log: string, policy: string): Promise<Alert[]> {
  const child = spawn(
    process.execPath,
    [...CHILD_NODE_ARGS, POSTERN_BIN, 'usage', 'replay', log, '--policies', policy],
    { stdio: ['ignore', 'pipe', 'pipe'] },
  );
  let out = '';
  let err = '';
  child.stdout.on('data', (chunk) => {
    out += chunk;
  });
  child.stderr.on('data', (chunk) => {
    err += chunk;
  });
  const code = await new Promise<number | null>((resolve) => child.once('exit', resolve));
  if (code !== 0) throw new Error(`usage replay of ${log} exited ${code}: ${err}`);
  return out
    .split('\n')
    .filter(Boolean)
    .map((line) => JSON.parse(line) as Alert);
}

export function scoreOf(scenario: Scenario, alerts: readonly Alert[]): Score {
  const incident = scenario.incident;
  const hits = incident ? alerts.filter((alert) => matches(alert, incident)) : [];
  const first = Math.min(...hits.map((alert) => Date.parse(alert.windowStart)));
  return {
    scenario,
    alerts,
    truePositives: hits.length,
    falsePositives: alerts.length - hits.length,
    ...(incident
      ? {
          recall: hits.length ? 1 : 0,
          ...(alerts.length ? { precision: hits.length / alerts.length } : {}),
          ...(hits.length
            ? { timeToDetectMs: first + WINDOW_SECONDS * 1000 - incident.fromMs }
            : {}),
        }
      : {}),
    detectors: [...new Set(hits.map((alert) => alert.detector))],
  };
}

/** Generates the scenarios in a temporary folder, replays each, and scores it. */
export async function scoreAll(): Promise<Score[]> {
  const dir = await mkdtemp(join(tmpdir(), 'postern-scenarios-'));
  try {
    const all = await writeScenarios(dir);
    return await Promise.all(
      all.map(async (scenario) =>
        scoreOf(
          scenario,
          await replay(join(dir, `${scenario.name}.jsonl`), join(dir, 'policy.yaml')),
        ),
      ),
    );
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
}

const minutes = (ms: number) => `${Math.round(ms / 60_000)} min`;

/** The README's table. */
export function table(scores: readonly Score[]): string {
  const rows = scores.map((s) => {
    const attack = s.scenario.kind === 'attack';
    return `| ${s.scenario.name} | ${s.scenario.kind} | ${s.scenario.description} | ${s.alerts.length} | ${s.falsePositives} | ${s.precision === undefined ? '-' : s.precision.toFixed(2)} | ${attack ? s.recall!.toFixed(2) : '-'} | ${s.timeToDetectMs === undefined ? '-' : minutes(s.timeToDetectMs)} | ${s.detectors.join(', ') || '-'} |`;
  });
  const attacks = scores.filter((s) => s.scenario.kind === 'attack');
  const tp = scores.reduce((n, s) => n + s.truePositives, 0);
  const all = scores.reduce((n, s) => n + s.alerts.length, 0);
  const detected = attacks.filter((s) => s.recall === 1).length;
  return [
    '| scenario | kind | what happens | alerts | false alerts | precision | recall | time to detect | detectors |',
    '| --- | --- | --- | --- | --- | --- | --- | --- | --- |',
    ...rows,
    `| all | | | ${all} | ${all - tp} | ${(all ? tp / all : 0).toFixed(2)} | ${(detected / attacks.length).toFixed(2)} | | |`,
  ].join('\n');
}

if (import.meta.main) process.stdout.write(`${table(await scoreAll())}\n`);
