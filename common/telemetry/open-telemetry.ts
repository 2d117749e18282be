/**
 * Whether this process exports OpenTelemetry, and starting the SDK when it
 * does. The SDK is configured only by the standard `OTEL_*` variables
 * (https://opentelemetry.io/docs/specs/otel/configuration/sdk-environment-variables/):
 * a process that names no exporter never loads it (nor the OTel API), so
 * its request path pays nothing for telemetry it does not send.
 *
 * "Names an exporter" means any of:
 * - an OTLP endpoint: OTEL_EXPORTER_OTLP_ENDPOINT or a per-signal
 *   OTEL_EXPORTER_OTLP_{TRACES,METRICS,LOGS}_ENDPOINT;
 * - an exporter choice other than `none`: OTEL_TRACES_EXPORTER,
 *   OTEL_METRICS_EXPORTER, OTEL_LOGS_EXPORTER (`console`, `otlp`);
 * and OTEL_SDK_DISABLED is not `true`. Once the SDK is loaded, it applies the
 * specification's defaults to what is unset: a signal whose exporter is not
 * named is sent by OTLP over HTTP (protobuf) to localhost:4318, so name
 * `none` for the signals you do not collect.
 */
const ENDPOINT_VARIABLES = [
  'OTEL_EXPORTER_OTLP_ENDPOINT',
  'OTEL_EXPORTER_OTLP_TRACES_ENDPOINT',
  'OTEL_EXPORTER_OTLP_METRICS_ENDPOINT',
  'OTEL_EXPORTER_OTLP_LOGS_ENDPOINT',
] as const;
const EXPORTER_VARIABLES = [
  'OTEL_TRACES_EXPORTER',
  'OTEL_METRICS_EXPORTER',
  'OTEL_LOGS_EXPORTER',
] as const;

export function openTelemetryConfigured(env: NodeJS.ProcessEnv = process.env): boolean {
  if (env.OTEL_SDK_DISABLED?.trim().toLowerCase() === 'true') return false;
  if (ENDPOINT_VARIABLES.some((name) => env[name]?.trim())) return true;
  return EXPORTER_VARIABLES.some((name) => {
    const exporters = (env[name] ?? '')
      .split(',')
      .map((value) => value.trim().toLowerCase())
      .filter(Boolean);
    return exporters.length > 0 && !exporters.includes('none');
  });
}

/** A started SDK: flush and stop it before the process exits, or the last batch is lost. */
export interface OpenTelemetry {
  shutdown(): Promise<void>;
}

export interface TelemetryResource {
  /** `service.name`: the workload (a sidecar), or `postern-control-plane`. */
  readonly serviceName: string;
  /** More resource attributes (`k8s.namespace.name`, `k8s.pod.name`, ...). */
  readonly attributes: Readonly<Record<string, string>>;
}

/**
 * Starts the SDK when the environment names an exporter; undefined, with
 * nothing loaded, when it does not. OTEL_SERVICE_NAME and
 * OTEL_RESOURCE_ATTRIBUTES, when set, win over `resource`.
 */
export async function startOpenTelemetry(
  resource: TelemetryResource,
  env: NodeJS.ProcessEnv = process.env,
): Promise<OpenTelemetry | undefined> {
  if (!openTelemetryConfigured(env)) return undefined;
  const { startSdk } = await import('./sdk.ts');
  return startSdk(resource);
}
