import { Injectable } from '@nestjs/common';
import { InjectRepository } from '@nestjs/typeorm';
import { Client } from '@temporalio/client';
import { In, IsNull, Not, Repository } from 'typeorm';
import { type CompilationStatus, TERMINAL_BUILD_STATUSES } from '@kiln/contracts';
import { WebhookEmitter } from '@kiln/core';
import { BuildEntity, CompilationEntity } from '@kiln/database';
import { WorkerMetrics } from '../metrics/worker-metrics.js';
import { type BuildUpdate, type BookkeepingActivities, queuesWithWorkers, runningBuildsOn } from '@kiln/temporal';

/** Bookkeeping activities of the CompileModel workflow (orchestrator task queue). All idempotent. */
@Injectable()
export class OrchestratorActivitiesService implements BookkeepingActivities {
  constructor(
    @InjectRepository(BuildEntity) private readonly builds: Repository<BuildEntity>,
    @InjectRepository(CompilationEntity) private readonly compilations: Repository<CompilationEntity>,
    private readonly temporal: Client,
    private readonly webhooks: WebhookEmitter,
    private readonly metrics: WorkerMetrics,
  ) {}

  async findQueuesWithoutWorkers(taskQueues: string[]): Promise<string[]> {
    const served = await queuesWithWorkers(this.temporal, taskQueues, await runningBuildsOn(this.builds, taskQueues));
    return taskQueues.filter((q) => !served.has(q));
  }

  async updateBuild(update: BuildUpdate): Promise<void> {
    const terminal = TERMINAL_BUILD_STATUSES.includes(update.status);
    // A build that already ended (e.g. succeeded just before a cancel) keeps its outcome.
    const from = update.fromStatuses ?? [];
    const changed = await this.builds.update(
      { id: update.buildId, status: from.length > 0 ? In(from) : Not(In([...TERMINAL_BUILD_STATUSES])) },
      {
        status: update.status,
        ...(update.errorCode !== undefined ? { errorCode: update.errorCode } : {}),
        ...(update.errorMessage !== undefined ? { errorMessage: update.errorMessage } : {}),
        ...(terminal ? { finishedAt: new Date() } : {}),
      },
    );
    // Once per build: a retried activity finds the build already failed and changes nothing.
    if (update.status === 'failed' && changed.affected) {
      const build = await this.builds.findOneByOrFail({ id: update.buildId });
      await this.webhooks.emit(build.tenantId, 'build.failed', {
        compilationId: build.compilationId,
        buildId: build.id,
        target: build.targetId,
        errorCode: build.errorCode,
        errorMessage: build.errorMessage,
      });
    }
  }

  /** Derives the compilation's outcome from its builds and records it. */
  async finishCompilation(input: { compilationId: string; cancelled: boolean }): Promise<CompilationStatus> {
    const builds = await this.builds.find({ where: { compilationId: input.compilationId } });
    if (input.cancelled) {
      await this.builds.update(
        { compilationId: input.compilationId, status: Not(In([...TERMINAL_BUILD_STATUSES])) },
        { status: 'cancelled', errorCode: 'CANCELLED', finishedAt: new Date() },
      );
    }
    const ok = builds.filter((b) => b.status === 'succeeded' || b.status === 'cached').length;
    const status: CompilationStatus = input.cancelled
      ? 'cancelled'
      : ok === builds.length
        ? 'succeeded'
        : ok === 0
          ? 'failed'
          : 'partial';
    // The first time it finishes, tell the tenant's webhooks; a retried activity just writes the outcome again.
    const first = await this.compilations.update(
      { id: input.compilationId, finishedAt: IsNull() },
      { status, finishedAt: new Date() },
    );
    if (first.affected) {
      const compilation = await this.compilations.findOneByOrFail({ id: input.compilationId });
      const final = builds.map((b) => ({
        ...b,
        status: input.cancelled && !TERMINAL_BUILD_STATUSES.includes(b.status) ? ('cancelled' as const) : b.status,
      }));
      this.metrics.compilationFinished(status, final);
      await this.webhooks.emit(compilation.tenantId, 'compilation.finished', {
        compilationId: compilation.id,
        versionId: compilation.modelVersionId,
        status,
        builds: final.map((b) => ({
          target: b.targetId,
          status: b.status,
          artifactId: b.artifactId,
          errorCode: b.errorCode,
        })),
      });
    } else {
      await this.compilations.update({ id: input.compilationId }, { status, finishedAt: new Date() });
    }
    return status;
  }
}
