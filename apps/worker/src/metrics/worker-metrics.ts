import { Injectable } from '@nestjs/common';
import { collectDefaultMetrics, Counter, Gauge, Histogram, Registry } from 'prom-client';
import type { BuildStatus, CompilationStatus } from '@kiln/contracts';

/** Seconds: builds take from seconds (a cache answer, a tiny model) to the better part of an hour (a GPU autotune). */
const BUILD_BUCKETS = [1, 2.5, 5, 10, 20, 40, 60, 120, 300, 600, 1200, 2400];

/**
 * The worker's Prometheus registry (one per process). Build-host metrics are counted per attempt where the attempt
 * runs; the orchestrator counts each build's final outcome once, when its compilation finishes. Labels are bounded
 * sets only (catalog targets, driver phases, error codes of error-codes.json, outcomes), never ids.
 */
@Injectable()
export class WorkerMetrics {
  readonly registry = new Registry();

  readonly buildAttempts = new Counter({
    name: 'kiln_build_attempts_total',
    help: 'Build attempts run on this build host, by target and outcome (succeeded, failed, cancelled).',
    labelNames: ['target', 'outcome'] as const,
    registers: [this.registry],
  });

  readonly buildFailures = new Counter({
    name: 'kiln_build_failures_total',
    help: 'Failed build attempts on this host, by target and error code (SANDBOX_UNAVAILABLE: the sandbox failed).',
    labelNames: ['target', 'code'] as const,
    registers: [this.registry],
  });

  readonly buildRetries = new Counter({
    name: 'kiln_build_retries_total',
    help: 'Build attempts after the first (Temporal retried the activity: a worker died, a retryable failure).',
    labelNames: ['target'] as const,
    registers: [this.registry],
  });

  readonly queueWait = new Histogram({
    name: 'kiln_build_queue_wait_seconds',
    help: 'Time from a build attempt being scheduled on its task queue to a worker starting it.',
    labelNames: ['target'] as const,
    buckets: [0.1, 0.5, 1, 5, 15, 30, 60, 120, 300, 600, 1800],
    registers: [this.registry],
  });

  readonly phaseDuration = new Histogram({
    name: 'kiln_build_phase_duration_seconds',
    help: "Time a build attempt spent in each phase (downloading, the driver's phases, uploading), by target.",
    labelNames: ['target', 'phase'] as const,
    buckets: BUILD_BUCKETS,
    registers: [this.registry],
  });

  readonly sandboxWall = new Gauge({
    name: 'kiln_sandbox_wall_holds',
    help: "The build sandbox's self-test at start, per wall: 1 holds, 0 does not (no build queue is served then).",
    labelNames: ['wall'] as const,
    registers: [this.registry],
  });

  readonly queueBacklog = new Gauge({
    name: 'kiln_build_queue_backlog',
    help: 'Build tasks waiting on each build queue (orchestrator, measured by the kiln-queue-backlog schedule).',
    labelNames: ['queue'] as const,
    registers: [this.registry],
  });

  readonly builds = new Counter({
    name: 'kiln_builds_total',
    help: 'Builds ended, counted once when their compilation finishes (orchestrator), by target and final status.',
    labelNames: ['target', 'status'] as const,
    registers: [this.registry],
  });

  readonly compilations = new Counter({
    name: 'kiln_compilations_total',
    help: 'Compilations finished (orchestrator), by status: succeeded, partial, failed, cancelled.',
    labelNames: ['status'] as const,
    registers: [this.registry],
  });

  readonly buildDuration = new Histogram({
    name: 'kiln_build_duration_seconds',
    help: 'Wall time of finished builds from start to end (orchestrator, cached builds excluded), by target and status.',
    labelNames: ['target', 'status'] as const,
    buckets: BUILD_BUCKETS,
    registers: [this.registry],
  });

  constructor() {
    collectDefaultMetrics({ register: this.registry, prefix: 'kiln_worker_' });
  }

  /** The orchestrator's count of one finished compilation and its builds (called once per compilation). */
  compilationFinished(
    status: CompilationStatus,
    builds: { targetId: string; status: BuildStatus; startedAt: Date | null; finishedAt: Date | null }[],
  ): void {
    this.compilations.inc({ status });
    for (const b of builds) {
      this.builds.inc({ target: b.targetId, status: b.status });
      if (b.status !== 'cached' && b.startedAt && b.finishedAt) {
        const seconds = (b.finishedAt.getTime() - b.startedAt.getTime()) / 1000;
        this.buildDuration.observe({ target: b.targetId, status: b.status }, seconds);
      }
    }
  }
}

/**
 * Times the phases of one build attempt: each `enter` ends the phase before it (observed under its name) and starts
 * the next; `end` closes the last one.
 */
export class PhaseClock {
  private phase: string | null = null;
  private since = 0;

  constructor(
    private readonly metrics: WorkerMetrics,
    private readonly target: string,
    private readonly now: () => number = () => performance.now(),
  ) {}

  enter(phase: string): void {
    if (phase === this.phase) return;
    this.end();
    // The driver's `done` is an instant, not a phase: what follows it (the upload) is timed on its own.
    if (phase === 'done') return;
    this.phase = phase;
    this.since = this.now();
  }

  end(): void {
    if (this.phase === null) return;
    this.metrics.phaseDuration.observe({ target: this.target, phase: this.phase }, (this.now() - this.since) / 1000);
    this.phase = null;
  }
}
