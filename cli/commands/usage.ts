import { createReadStream } from 'node:fs';
import { createInterface } from 'node:readline';
import { ConfigError } from '../../common/errors.ts';
import { parseUsageReport } from '../../common/usage.ts';
import { type Command, durationFlag } from './command.ts';

export const usageReplay: Command = {
  name: 'usage replay',
  summary:
    'Runs the exfiltration detectors over a usage log (one usage report per line, DESIGN.md) on event time; prints each alert as a JSON line.',
  flags: [
    {
      name: 'policies',
      help: "folder or file of RoutePolicies whose routes' exfiltration.maxResponseBytes caps apply",
    },
    {
      name: 'learning',
      help: 'how long a caller, route or workload is watched before it may alert',
      default: '24h',
    },
  ],
  positional: 'FILE',
  async run(values, positional) {
    if (positional.length !== 1) {
      throw new ConfigError('postern usage replay: name one usage log (FILE)');
    }
    const file = positional[0]!;
    // Loaded here: the detectors are the control plane's, and no other command needs them.
    const { DetectionEngine } = await import('../../control-plane/detection/engine.ts');
    const { policyCaps } = await import('../../control-plane/detection/cap.ts');
    let caps: ReturnType<typeof policyCaps> | undefined;
    if (values.policies) {
      const { loadPolicies } = await import('../../common/policy/files.ts');
      const loaded = await loadPolicies([values.policies]);
      if (loaded.errors.length) {
        throw new ConfigError(`--policies: ${loaded.errors.join('; ')}`);
      }
      caps = policyCaps(loaded.policies);
    }
    const engine = new DetectionEngine({
      config: { learningSeconds: durationFlag(values, 'learning') / 1000 },
      ...(caps ? { caps } : {}),
    });
    const print = (alerts: readonly object[]) => {
      if (alerts.length) process.stdout.write(alerts.map((a) => `${JSON.stringify(a)}\n`).join(''));
    };
    const lines = createInterface({
      input: createReadStream(file),
      crlfDelay: Number.POSITIVE_INFINITY,
    });
    let number = 0;
    let bad = 0;
    try {
      for await (const line of lines) {
        number++;
        if (!line.trim()) continue;
        let value: unknown;
        try {
          value = JSON.parse(line);
        } catch (error) {
          bad++;
          process.stderr.write(`${file}:${number}: not JSON: ${(error as Error).message}\n`);
          continue;
        }
        const parsed = parseUsageReport(value);
        if (!parsed.ok) {
          bad++;
          process.stderr.write(
            `${file}:${number}: not a usage report: ${parsed.problems.join('; ')}\n`,
          );
          continue;
        }
        print(engine.add(parsed.report));
      }
    } catch (error) {
      throw new ConfigError(`${file}: ${(error as Error).message}`);
    }
    print(engine.flush());
    if (bad) process.stderr.write(`${bad} line(s) of ${file} skipped\n`);
    return bad ? 1 : 0;
  },
};
