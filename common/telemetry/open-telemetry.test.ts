import t from 'tap';
import { openTelemetryConfigured } from './open-telemetry.ts';

t.test('no OTEL variables means no SDK', async (t) => {
  t.equal(openTelemetryConfigured({}), false);
  t.equal(
    openTelemetryConfigured({ OTEL_SERVICE_NAME: 'orders' }),
    false,
    'a name exports nothing',
  );
});

t.test('an OTLP endpoint, for all signals or one, loads it', async (t) => {
  t.equal(openTelemetryConfigured({ OTEL_EXPORTER_OTLP_ENDPOINT: 'http://collector:4318' }), true);
  t.equal(
    openTelemetryConfigured({ OTEL_EXPORTER_OTLP_TRACES_ENDPOINT: 'http://jaeger:4318/v1/traces' }),
    true,
  );
  t.equal(openTelemetryConfigured({ OTEL_EXPORTER_OTLP_ENDPOINT: '  ' }), false, 'blank is unset');
});

t.test('an exporter named, other than none, loads it', async (t) => {
  t.equal(openTelemetryConfigured({ OTEL_TRACES_EXPORTER: 'console' }), true);
  t.equal(openTelemetryConfigured({ OTEL_METRICS_EXPORTER: 'otlp' }), true);
  t.equal(
    openTelemetryConfigured({
      OTEL_TRACES_EXPORTER: 'none',
      OTEL_METRICS_EXPORTER: 'none',
      OTEL_LOGS_EXPORTER: 'none',
    }),
    false,
  );
});

t.test('OTEL_SDK_DISABLED=true wins over everything', async (t) => {
  t.equal(
    openTelemetryConfigured({
      OTEL_SDK_DISABLED: 'TRUE',
      OTEL_EXPORTER_OTLP_ENDPOINT: 'http://collector:4318',
    }),
    false,
  );
});
