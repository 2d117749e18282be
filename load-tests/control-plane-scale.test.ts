/**
 * CI runs the control-plane scale harness only as a smoke (seconds): a real
 * control plane process and the simulator process with 20 sidecars, two
 * policy edits, reports written to a temporary folder. It proves the
 * harness works end to end, and that every simulated sidecar acks every
 * edit over real mTLS; it never measures anything.
 */
import { execFile } from 'node:child_process';
import { readFile } from 'node:fs/promises';
import { join, resolve } from 'node:path';
import { promisify } from 'node:util';
import t from 'tap';
import { CHILD_NODE_ARGS } from '../cli/processes.ts';
import { tempDir } from '../test/helpers.ts';
import type { ScaleReport } from './control-plane-scale/report.ts';

t.test('npm run bench:control-plane -- 20 --edits 2: every sidecar acks every edit', async (t) => {
  const out = await tempDir(t);
  const { stdout } = await promisify(execFile)(
    process.execPath,
    [
      ...CHILD_NODE_ARGS,
      resolve(import.meta.dirname, 'control-plane-scale.ts'),
      '20',
      '--edits',
      '2',
      '--gap',
      '0.2',
      '--out',
      out,
    ],
    { timeout: 90_000 },
  );
  t.match(stdout, /^\| 20 \| 2 × 10 \|/m, 'the connect table has the run');

  const report = JSON.parse(
    await readFile(join(out, 'control-plane-scale.json'), 'utf8'),
  ) as ScaleReport;
  t.equal(report.runs.length, 1);
  const run = report.runs[0]!;
  t.ok(run.connect.complete, 'every sidecar registered and received its whole registry');
  t.equal(run.connect.opened, 20);
  t.equal(run.registryPerSidecar, 10, 'two services: each sidecar may call the other ten');
  t.ok(run.memory.baselineMb > 0 && run.memory.idleMb > 0, 'RSS was read from /proc');
  t.equal(run.edits.length, 2);
  for (const edit of run.edits) {
    t.equal(edit.applied, 20, `every sidecar applied and acked edit ${edit.edit}`);
    t.equal(edit.recorded, 20, 'and GET /v1/acks shows each of those acks');
    t.equal(edit.traffic.ackFailures, 0);
    t.equal(edit.rejected, 0);
    t.ok(edit.ackedMs.p50 > 0 && edit.ackedMs.max >= edit.ackedMs.p99);
    t.ok(edit.traffic.bytes > 0, 'the pushed bytes were counted');
    t.ok(edit.controlPlaneCpuSeconds >= 0);
  }

  const markdown = await readFile(join(out, 'control-plane-scale.md'), 'utf8');
  t.match(markdown, /^\| 20 \| 2 \| 40 \/ 40 of 40 \| 0 \|/m, 'the edit table counts 40 acks');
  t.match(markdown, /^### 20 sidecars, per edit$/m);
  t.match(markdown, /^\| 2 \| 20 \| 20 \| 0 \| 0 \|/m, 'a row per edit');
  t.match(markdown, /^## 50,000 pods: a linear projection$/m);
});
