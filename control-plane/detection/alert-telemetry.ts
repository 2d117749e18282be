/**
 * Alerts as OpenTelemetry sees them, loaded only when the control plane
 * exports OTel (common/telemetry/open-telemetry.ts): each alert one log
 * record (severity by the alert's, the alert itself as attributes and a
 * JSON body), one span `exfiltration alert` whose event carries the same
 * (trace views show it beside the requests: the evidence names some of
 * their trace ids), and counted in `postern.alerts` by detector and
 * severity. A security pipeline reading the collector gets the same alert
 * GET /v1/alerts lists.
 */
import { type Attributes, logs, metrics, SeverityNumber, trace } from '@opentelemetry/api';
import type { Alert } from '../../common/usage.ts';

const SEVERITY: Record<Alert['severity'], SeverityNumber> = {
  low: SeverityNumber.INFO,
  medium: SeverityNumber.WARN,
  high: SeverityNumber.ERROR,
};

export function alertTelemetry(): (alert: Alert) => void {
  const logger = logs.getLogger('postern-control-plane');
  const counter = metrics.getMeter('postern-control-plane').createCounter('postern.alerts', {
    description: 'Exfiltration alerts raised, by detector and severity.',
  });
  const tracer = trace.getTracer('postern-control-plane');
  return (alert) => {
    counter.add(1, { 'postern.detector': alert.detector, 'postern.severity': alert.severity });
    const attributes: Attributes = {
      'postern.detector': alert.detector,
      'postern.severity': alert.severity,
      'postern.principal': alert.principal,
      ...(alert.workload ? { 'postern.workload': alert.workload } : {}),
      ...(alert.route ? { 'postern.route': alert.route } : {}),
      ...(alert.destination ? { 'postern.destination': alert.destination } : {}),
      'postern.window.start': alert.windowStart,
    };
    logger.emit({
      severityNumber: SEVERITY[alert.severity],
      severityText: alert.severity.toUpperCase(),
      eventName: 'postern.exfiltration.alert',
      body: JSON.stringify(alert),
      attributes,
    });
    const span = tracer.startSpan(`exfiltration alert ${alert.detector}`, { attributes });
    span.addEvent('postern.exfiltration.alert', {
      ...attributes,
      'postern.evidence': JSON.stringify(alert.evidence),
    });
    span.end();
  };
}
