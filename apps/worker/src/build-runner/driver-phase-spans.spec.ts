import assert from 'node:assert/strict';
import { beforeEach, describe, it } from 'node:test';
import { ROOT_CONTEXT, SpanStatusCode, trace } from '@opentelemetry/api';
import {
  BasicTracerProvider,
  InMemorySpanExporter,
  type ReadableSpan,
  SimpleSpanProcessor,
} from '@opentelemetry/sdk-trace-base';
import { DriverPhaseSpans } from './driver-phase-spans.js';
import { parsePhaseEnd, parseProgress } from './driver-runner.js';

const exporter = new InMemorySpanExporter();
const provider = new BasicTracerProvider({ spanProcessors: [new SimpleSpanProcessor(exporter)] });
const tracer = provider.getTracer('test');

/** A build activity's span and the phase spans under it, on a clock the test moves (ms since the epoch). */
function setUp(startMs = 1_760_000_000_000) {
  const clock = { ms: startMs };
  const activity = tracer.startSpan('RunActivity:buildTarget', { startTime: startMs });
  const { traceId, spanId } = activity.spanContext();
  const traceparent = `00-${traceId}-${spanId}-01`;
  const spans = new DriverPhaseSpans(trace.setSpan(ROOT_CONTEXT, activity), traceparent, tracer, () => clock.ms);
  return { clock, activity, traceparent, spans };
}

/** The driver's own lines, through the worker's parsers, as the build activity hands them over. */
function phase(name: string, atS: number, traceparent: string) {
  const line = JSON.stringify({ event: 'phase', phase: name, message: `${name}…`, elapsedS: 0, at: atS, traceparent });
  return parseProgress(line)!;
}
function phaseEnd(name: string, atS: number, traceparent: string, errorCode?: string) {
  const line = JSON.stringify({
    event: 'phase_end',
    phase: name,
    elapsedS: 0,
    at: atS,
    ok: !errorCode,
    ...(errorCode ? { errorCode } : {}),
    traceparent,
  });
  return parsePhaseEnd(line)!;
}

function ms(span: ReadableSpan, which: 'startTime' | 'endTime'): number {
  const [s, ns] = span[which];
  return s * 1000 + ns / 1e6;
}

describe('DriverPhaseSpans', () => {
  beforeEach(() => exporter.reset());

  it('makes one child span of the activity per phase, with the driver’s times', () => {
    const { clock, activity, traceparent, spans } = setUp();
    const t0 = clock.ms / 1000;
    clock.ms += 60_000; // the events arrive as the driver runs; the test hands them over afterwards
    spans.started(phase('loading', t0 + 1, traceparent));
    spans.ended(phaseEnd('loading', t0 + 3, traceparent));
    spans.started(phase('compiling', t0 + 3, traceparent));
    spans.ended(phaseEnd('compiling', t0 + 20, traceparent));
    spans.started(phase('done', t0 + 21, traceparent));
    spans.finish(null);

    const got = exporter.getFinishedSpans();
    assert.deepEqual(
      got.map((s) => s.name),
      ['driver:loading', 'driver:compiling'],
    );
    for (const s of got) {
      assert.equal(s.spanContext().traceId, activity.spanContext().traceId);
      assert.equal(s.parentSpanId, activity.spanContext().spanId);
      assert.equal(s.status.code, SpanStatusCode.UNSET);
    }
    assert.equal(ms(got[0], 'startTime'), (t0 + 1) * 1000);
    assert.equal(ms(got[0], 'endTime'), (t0 + 3) * 1000);
    assert.equal(ms(got[1], 'endTime'), (t0 + 20) * 1000);
    assert.equal(got[1].attributes['kiln.driver.phase'], 'compiling');
  });

  it('marks the phase the build failed in with its error code', () => {
    const { clock, traceparent, spans } = setUp();
    const t0 = clock.ms / 1000;
    clock.ms += 10_000;
    spans.started(phase('compiling', t0 + 1, traceparent));
    spans.ended(phaseEnd('compiling', t0 + 2, traceparent, 'COMPILE_FAILED'));
    spans.finish('COMPILE_FAILED');
    const [span] = exporter.getFinishedSpans();
    assert.equal(span.status.code, SpanStatusCode.ERROR);
    assert.equal(span.attributes['kiln.error_code'], 'COMPILE_FAILED');
    assert.equal(exporter.getFinishedSpans().length, 1);
  });

  it('ends a phase the driver left open (killed) when the run ends, failed', () => {
    const { clock, traceparent, spans } = setUp();
    const t0 = clock.ms / 1000;
    spans.started(phase('verifying', t0 + 1, traceparent));
    clock.ms += 5_000;
    spans.finish('COMPILE_TIMEOUT');
    const [span] = exporter.getFinishedSpans();
    assert.equal(span.name, 'driver:verifying');
    assert.equal(ms(span, 'endTime'), clock.ms);
    assert.equal(span.status.code, SpanStatusCode.ERROR);
  });

  it('ignores events that echo another traceparent, and keeps driver times within the run', () => {
    const { clock, traceparent, spans } = setUp();
    const t0 = clock.ms / 1000;
    const foreign = '00-11111111111111111111111111111111-2222222222222222-01';
    clock.ms += 1_000;
    spans.started(phase('loading', t0, foreign));
    // A start dated an hour before the driver ran and an end in the future are pulled into [run start, now].
    spans.started(phase('compiling', t0 - 3600, traceparent));
    spans.ended(phaseEnd('compiling', t0 + 3600, traceparent));
    const got = exporter.getFinishedSpans();
    assert.deepEqual(
      got.map((s) => s.name),
      ['driver:compiling'],
    );
    assert.equal(ms(got[0], 'startTime'), t0 * 1000);
    assert.equal(ms(got[0], 'endTime'), clock.ms);
  });

  it('makes nothing of an older driver’s events (no time, no traceparent)', () => {
    const { traceparent, spans } = setUp();
    assert.ok(traceparent);
    spans.started(parseProgress('{"event":"phase","phase":"loading","message":"m","elapsedS":1.5}')!);
    spans.finish(null);
    assert.equal(exporter.getFinishedSpans().length, 0);
  });
});
