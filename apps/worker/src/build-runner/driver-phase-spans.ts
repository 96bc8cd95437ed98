import { type Context, type Span, SpanStatusCode, type Tracer } from '@opentelemetry/api';
import { kilnTracer } from '@kiln/tracing';
import type { DriverPhaseEnd, DriverProgress } from './driver-runner.js';

/** Longest phase name kept in a span name: the driver is untrusted, span names must stay short. */
const MAX_PHASE_CHARS = 40;

/**
 * Turns the compile driver's phase events into one span per phase, children of the build activity's span, with the
 * driver's own start and end times. The driver runs sandboxed without network and without OpenTelemetry: it only
 * reports when each phase started and ended, echoing the traceparent its job carried. What it reports is untrusted,
 * so events echoing another traceparent are ignored and its times are kept within the driver run as this process
 * saw it (a driver cannot date a span before it started or after it exited).
 */
export class DriverPhaseSpans {
  private running: { phase: string; span: Span } | null = null;
  private readonly startedMs: number;

  constructor(
    /** The build activity's context: the phase spans' parent. */
    private readonly parent: Context,
    /** The traceparent written into the job (the activity span's). */
    private readonly traceparent: string,
    private readonly tracer: Tracer = kilnTracer(),
    private readonly now: () => number = Date.now,
  ) {
    this.startedMs = now();
  }

  /** A phase started: ends the one still running (the driver moved on) and opens this one; `done` opens nothing. */
  started(p: DriverProgress): void {
    if (p.traceparent !== this.traceparent || p.at === undefined) return;
    const at = this.clamp(p.at);
    this.endRunning(at, null);
    if (p.phase === 'done') return;
    const phase = p.phase.slice(0, MAX_PHASE_CHARS);
    const span = this.tracer.startSpan(
      `driver:${phase}`,
      { startTime: at, attributes: { 'kiln.driver.phase': phase, 'kiln.driver.message': p.message.slice(0, 500) } },
      this.parent,
    );
    this.running = { phase: p.phase, span };
  }

  /** A phase ended, by the driver's word: as it says, failed with its code when `ok` is false. */
  ended(e: DriverPhaseEnd): void {
    if (e.traceparent !== this.traceparent || this.running?.phase !== e.phase) return;
    this.endRunning(this.clamp(e.at), e.ok ? null : (e.errorCode ?? 'failed'));
  }

  /** The driver exited: a phase it left open (killed, crashed) ends now, failed with the build's code if it failed. */
  finish(errorCode: string | null): void {
    this.endRunning(this.now(), errorCode);
  }

  private endRunning(atMs: number, errorCode: string | null): void {
    if (!this.running) return;
    const { span } = this.running;
    this.running = null;
    if (errorCode !== null) {
      span.setAttribute('kiln.error_code', errorCode);
      span.setStatus({ code: SpanStatusCode.ERROR, message: errorCode });
    }
    span.end(atMs);
  }

  /** A driver time (seconds since the epoch) in milliseconds, within [driver start, now]. */
  private clamp(atSeconds: number): number {
    return Math.min(Math.max(atSeconds * 1000, this.startedMs), this.now());
  }
}
