import assert from 'node:assert/strict';
import { test } from 'node:test';
import { trace } from '@opentelemetry/api';
import { activeTracing, otlpTracesUrl, startTracing, traceparentOf } from './tracing.js';

const unset = { OTEL_EXPORTER_OTLP_ENDPOINT: undefined, OTEL_EXPORTER_OTLP_TRACES_ENDPOINT: undefined };

test('traces go to <base>/v1/traces, or to the traces endpoint as given', () => {
  const base = { ...unset, OTEL_BSP_SCHEDULE_DELAY: 5000 };
  assert.equal(otlpTracesUrl(base), null);
  assert.equal(
    otlpTracesUrl({ ...base, OTEL_EXPORTER_OTLP_ENDPOINT: 'http://collector:4318' }),
    'http://collector:4318/v1/traces',
  );
  assert.equal(
    otlpTracesUrl({ ...base, OTEL_EXPORTER_OTLP_ENDPOINT: 'http://collector:4318/' }),
    'http://collector:4318/v1/traces',
  );
  assert.equal(
    otlpTracesUrl({
      ...base,
      OTEL_EXPORTER_OTLP_ENDPOINT: 'http://collector:4318',
      OTEL_EXPORTER_OTLP_TRACES_ENDPOINT: 'https://vendor.example/otlp/traces',
    }),
    'https://vendor.example/otlp/traces',
  );
});

test('with no endpoint, tracing stays off: nothing registered, spans are no-ops', () => {
  assert.equal(startTracing({ ...unset, OTEL_BSP_SCHEDULE_DELAY: 5000 }, 'kiln-test'), null);
  assert.equal(activeTracing(), null);
  const span = trace.getTracer('kiln').startSpan('x');
  assert.equal(span.isRecording(), false);
  span.end();
  assert.equal(traceparentOf(), undefined);
});
