/**
 * `postern up` prints exfiltration alerts as the control plane raises them:
 * it asks GET /v1/alerts (as the operator identity) every couple of seconds
 * and prints the ones it has not printed, oldest first, one line each.
 */
import type { Agent } from 'undici';
import { request } from 'undici';
import type { Alert } from '../../common/usage.ts';

const POLL_MS = 2000;
const PAGE = 100;

export function alertLine(alert: Alert): string {
  const where = alert.destination
    ? `to ${alert.destination}`
    : `on ${alert.workload} route ${alert.route}`;
  return `ALERT ${alert.severity} ${alert.detector}: ${alert.principal} ${where} (window ${alert.windowStart}) ${JSON.stringify(alert.evidence)}\n`;
}

export function watchAlerts(
  controlPlaneUrl: string,
  operator: Agent,
  write: (text: string) => void,
): () => void {
  // The control plane `up` started is new: every alert it lists is news.
  let printed = 0;
  let stopped = false;
  const poll = async () => {
    try {
      const response = await request(`${controlPlaneUrl}/v1/alerts?limit=${PAGE}`, {
        dispatcher: operator,
      });
      if (response.statusCode !== 200) {
        await response.body.dump();
        return;
      }
      const { alerts, total } = (await response.body.json()) as {
        alerts: Alert[];
        total: number;
      };
      const fresh = Math.min(total - printed, alerts.length);
      for (const alert of alerts.slice(0, fresh).reverse()) write(alertLine(alert));
      printed = total;
    } catch {
      // The control plane restarting: the next poll asks again.
    }
  };
  const timer = setInterval(() => {
    if (!stopped) void poll();
  }, POLL_MS);
  void poll();
  return () => {
    stopped = true;
    clearInterval(timer);
  };
}
