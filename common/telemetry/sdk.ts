/**
 * The one place the OpenTelemetry SDK is wired (loaded only through
 * open-telemetry.ts, when an exporter is configured). Everything else in
 * Postern talks to the OTel API, which is a no-op until this runs.
 *
 * No instrumentation libraries: the sidecar makes its own spans for the
 * requests it relays (sidecar/telemetry/otel-exchange.ts); Node's http
 * instrumentation would add a second span per request and its cost.
 */
import { defaultResource, resourceFromAttributes } from '@opentelemetry/resources';
import { NodeSDK } from '@opentelemetry/sdk-node';
import type { OpenTelemetry, TelemetryResource } from './open-telemetry.ts';

export function startSdk(resource: TelemetryResource): OpenTelemetry {
  const sdk = new NodeSDK({
    serviceName: process.env.OTEL_SERVICE_NAME?.trim() || resource.serviceName,
    instrumentations: [],
    // OTEL_RESOURCE_ATTRIBUTES is merged over these by the SDK's own detector.
    resource: defaultResource().merge(resourceFromAttributes(resource.attributes)),
  });
  sdk.start();
  let stopped: Promise<void> | undefined;
  return {
    shutdown: () => {
      stopped ??= sdk.shutdown().catch(() => {});
      return stopped;
    },
  };
}
