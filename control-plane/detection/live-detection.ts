/**
 * Detection as the control plane runs it: reports from every sidecar
 * (POST /v1/usage) into one engine, windows closed by later reports or by
 * the clock, and each alert logged and kept for GET /v1/alerts.
 */
import type { Logger } from '../../common/log.ts';
import type { Alert, UsageReport } from '../../common/usage.ts';
import { AlertLog } from './alert-log.ts';
import type { DetectionConfig } from './config.ts';
import { type CapLookup, DetectionEngine } from './engine.ts';

export class LiveDetection {
  readonly engine: DetectionEngine;
  readonly alerts = new AlertLog();
  readonly #logger: Logger;
  readonly #timer: NodeJS.Timeout;
  readonly #onAlert: ((alert: Alert) => void) | undefined;

  constructor(options: {
    readonly config?: Partial<DetectionConfig>;
    readonly caps: CapLookup;
    /** Where the registry says an identity's pods run (the off-workload detector's context). */
    readonly registered?: (principal: string) => Iterable<string> | undefined;
    readonly logger: Logger;
    readonly now: () => number;
    /** Also told of each alert (OpenTelemetry, when exported). */
    readonly onAlert?: (alert: Alert) => void;
  }) {
    this.#onAlert = options.onAlert;
    this.engine = new DetectionEngine({
      caps: options.caps,
      ...(options.registered ? { registered: options.registered } : {}),
      ...(options.config ? { config: options.config } : {}),
    });
    this.#logger = options.logger;
    this.#timer = setInterval(() => this.#publish(this.engine.expire(options.now())), 1000);
    this.#timer.unref();
  }

  report(report: UsageReport): void {
    this.#publish(this.engine.add(report));
  }

  #publish(alerts: readonly Alert[]): void {
    this.alerts.add(alerts);
    for (const alert of alerts) {
      // Fields named one by one: nothing in a report can stand in for the log's own.
      this.#logger.warn('exfiltration alert', {
        detector: alert.detector,
        severity: alert.severity,
        principal: alert.principal,
        workload: alert.workload,
        route: alert.route,
        destination: alert.destination,
        windowStart: alert.windowStart,
        evidence: alert.evidence,
      });
      this.#onAlert?.(alert);
    }
  }

  close(): void {
    clearInterval(this.#timer);
  }
}
