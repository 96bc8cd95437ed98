import { Injectable, Logger, type OnApplicationShutdown, Optional } from '@nestjs/common';
import { NativeConnection, Worker } from '@temporalio/worker';
import { KilnConfig } from '@kiln/config';
import { temporalConnectionOptions } from '@kiln/core';
import { activeTracing, type KilnTracing } from '@kiln/tracing';
import { ORCHESTRATOR_TASK_QUEUE, WORKFLOWS_PATH } from '@kiln/temporal';
import { BuildActivitiesService } from './activities/build.activities.js';
import { OrchestratorActivitiesService } from './activities/orchestrator.activities.js';
import { PortableSigningActivitiesService } from './activities/portable-signing.activities.js';
import { PublishingActivitiesService } from './activities/publishing.activities.js';
import { RolloutActivitiesService } from './activities/rollout.activities.js';
import { RetentionActivitiesService } from './activities/retention.activities.js';
import { WebhookActivitiesService } from './activities/webhook.activities.js';
import { ScheduledActivitiesService } from './activities/scheduled.activities.js';
import { HostService } from './host/host.service.js';
import { WorkerMetrics } from './metrics/worker-metrics.js';
import { SchedulesService } from './schedules.service.js';
import { activityLogContext } from './logging/activity-log-context.js';
import { temporalTracingOptions } from './tracing/temporal-tracing.js';

/**
 * Runs this process's Temporal workers: the orchestrator (CompileModel and rollout workflows, their bookkeeping)
 * and one build worker per target queue this host can serve. Shutdown drains them, then closes the
 * connection: an in-flight build either finishes or is retried elsewhere after its heartbeat stops.
 */
@Injectable()
export class TemporalWorkersService implements OnApplicationShutdown {
  private readonly logger = new Logger(TemporalWorkersService.name);
  private connection?: NativeConnection;
  private workers: Worker[] = [];
  private running?: Promise<unknown>;

  // Each role's services exist only where the role runs (WorkerModule.forRoles).
  constructor(
    private readonly config: KilnConfig,
    private readonly metrics: WorkerMetrics,
    @Optional() private readonly host?: HostService,
    @Optional() private readonly orchestrator?: OrchestratorActivitiesService,
    @Optional() private readonly rollouts?: RolloutActivitiesService,
    @Optional() private readonly publishing?: PublishingActivitiesService,
    @Optional() private readonly portableSigning?: PortableSigningActivitiesService,
    @Optional() private readonly builder?: BuildActivitiesService,
    @Optional() private readonly webhooks?: WebhookActivitiesService,
    @Optional() private readonly retention?: RetentionActivitiesService,
    @Optional() private readonly scheduled?: ScheduledActivitiesService,
    @Optional() private readonly schedules?: SchedulesService,
  ) {}

  /** Starts the workers; `buildsRefused` names the missing sandbox walls when the build role serves nothing. */
  async start(): Promise<{ queues: string[]; buildsRefused: string | null }> {
    this.connection = await NativeConnection.connect(temporalConnectionOptions(this.config));
    // identity: Temporal records it on each activity task this process takes (the UI shows which host ran it).
    const common = {
      connection: this.connection,
      namespace: this.config.TEMPORAL_NAMESPACE,
      identity: this.config.workerId,
    };
    const tracing = activeTracing();
    const roles = this.config.KILN_WORKER_ROLES;
    let buildsRefused: string | null = null;

    if (roles.includes('orchestrator')) {
      const o = this.orchestrator!;
      const r = this.rollouts!;
      const p = this.publishing!;
      const s = this.portableSigning!;
      const w = this.webhooks!;
      const retention = this.retention!;
      const j = this.scheduled!;
      this.workers.push(
        await Worker.create({
          ...common,
          taskQueue: ORCHESTRATOR_TASK_QUEUE,
          workflowsPath: WORKFLOWS_PATH,
          ...observability(tracing, true),
          activities: {
            findQueuesWithoutWorkers: (queues: string[]) => o.findQueuesWithoutWorkers(queues),
            updateBuild: (u: Parameters<typeof o.updateBuild>[0]) => o.updateBuild(u),
            finishCompilation: (i: Parameters<typeof o.finishCompilation>[0]) => o.finishCompilation(i),
            // The trusted half of each build, and portable signing: the only users of the signing key.
            findCachedArtifact: (i: Parameters<typeof p.findCachedArtifact>[0]) => p.findCachedArtifact(i),
            finishCachedBuild: (i: Parameters<typeof p.finishCachedBuild>[0]) => p.finishCachedBuild(i),
            grantModelDownload: (i: Parameters<typeof p.grantModelDownload>[0]) => p.grantModelDownload(i),
            grantPartUploads: (i: Parameters<typeof p.grantPartUploads>[0]) => p.grantPartUploads(i),
            publishArtifact: (i: Parameters<typeof p.publishArtifact>[0]) => p.publishArtifact(i),
            signPortable: (i: Parameters<typeof s.signPortable>[0]) => s.signPortable(i),
            // Staged rollouts (rolloutWorkflow).
            enterStage: (i: Parameters<typeof r.enterStage>[0]) => r.enterStage(i),
            evaluateGates: (i: Parameters<typeof r.evaluateGates>[0]) => r.evaluateGates(i),
            rollBackClasses: (i: Parameters<typeof r.rollBackClasses>[0]) => r.rollBackClasses(i),
            setPaused: (i: Parameters<typeof r.setPaused>[0]) => r.setPaused(i),
            finishRollout: (i: Parameters<typeof r.finishRollout>[0]) => r.finishRollout(i),
            // Webhook deliveries (deliverWebhookWorkflow).
            attemptWebhookDelivery: (i: { deliveryId: string }) => w.attemptWebhookDelivery(i),
            failWebhookDelivery: (i: { deliveryId: string }) => w.failWebhookDelivery(i),
            // The scheduled retention pass (applyRetentionWorkflow).
            applyRetentionPolicies: () => retention.applyRetentionPolicies(),
            // Periodic jobs, started by their Temporal Schedules (SchedulesService).
            collectGarbage: () => j.collectGarbage(),
            sweepUploads: () => j.sweepUploads(),
            reconcileCompilations: () => j.reconcileCompilations(),
            dropExpiredTelemetry: () => j.dropExpiredTelemetry(),
            publishQueueBacklog: () => j.publishQueueBacklog(),
          },
        }),
      );
      // After the worker exists, so a schedule's first run finds a poller.
      await this.schedules!.ensure();
    }
    if (roles.includes('build')) {
      const host = this.host!;
      const builder = this.builder!;
      // Runs the sandbox self-test: without every wall (and without the explicit opt-out) no build queue is served.
      await host.init();
      const gate = host.sandboxGate();
      for (const check of gate.report.checks) this.metrics.sandboxWall.set({ wall: check.wall }, check.ok ? 1 : 0);
      if (!gate.serveBuilds) buildsRefused = gate.report.failed.map((c) => c.wall).join(', ');
      // CPU queues: KILN_WORKER_BUILD_CONCURRENCY builds at once. CUDA queues: one build per GPU of the target's
      // compute capability, each pinned to its GPU (a host without such a GPU serves no CUDA queue at all).
      for (const queue of host.servedQueues()) {
        this.workers.push(
          await Worker.create({
            ...common,
            taskQueue: queue.taskQueue,
            ...observability(tracing, false),
            activities: {
              buildTarget: (i: Parameters<BuildActivitiesService['buildTarget']>[0]) => builder.buildTarget(i),
            },
            maxConcurrentActivityTaskExecutions: queue.concurrency,
            // A cancellation reaches a running activity only in the answer to a heartbeat, and the SDK sends
            // heartbeats at most every 0.8 x heartbeatTimeout (36 s here) by default: a cancel could then arrive
            // after the build had finished. Every heartbeat (one each few seconds) goes out instead.
            maxHeartbeatThrottleInterval: '2 seconds',
            // Builds are long; let a shutdown wait for a running compile a while before giving it up.
            shutdownGraceTime: '30 seconds',
          }),
        );
      }
    }
    if (this.workers.length === 0) {
      throw new Error(
        'nothing to run: the build role serves no queue (see the log above for why) and the orchestrator role is off',
      );
    }
    this.running = Promise.all(this.workers.map((w) => w.run())).catch((err: unknown) => {
      this.logger.error(`A Temporal worker stopped: ${String(err)}`);
      process.exitCode = 1;
    });
    return { queues: this.workers.map((w) => w.options.taskQueue), buildsRefused };
  }

  async onApplicationShutdown(): Promise<void> {
    for (const w of this.workers) if (w.getState() === 'RUNNING') w.shutdown();
    await this.running;
    await this.connection?.close();
  }
}

/**
 * A Temporal worker's interceptors and sinks: tracing's when it is on (outermost, so its span is active inside), and
 * the log context that puts the activity's ids on its log lines.
 */
function observability(tracing: KilnTracing | null, runsWorkflows: boolean): ReturnType<typeof temporalTracingOptions> {
  const traced = temporalTracingOptions(tracing, runsWorkflows);
  return {
    ...traced,
    interceptors: { ...traced.interceptors, activity: [...(traced.interceptors?.activity ?? []), activityLogContext] },
  };
}
