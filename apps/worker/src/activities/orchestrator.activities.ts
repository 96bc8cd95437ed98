import { Injectable } from '@nestjs/common';
import { InjectRepository } from '@nestjs/typeorm';
import { Client } from '@temporalio/client';
import { In, Not, Repository } from 'typeorm';
import { type CompilationStatus, TERMINAL_BUILD_STATUSES } from '@kiln/contracts';
import { BuildEntity, CompilationEntity } from '@kiln/database';
import { type BuildUpdate, type BookkeepingActivities, queuesWithWorkers, runningBuildsOn } from '@kiln/temporal';

/** Bookkeeping activities of the CompileModel workflow (orchestrator task queue). All idempotent. */
@Injectable()
export class OrchestratorActivitiesService implements BookkeepingActivities {
  constructor(
    @InjectRepository(BuildEntity) private readonly builds: Repository<BuildEntity>,
    @InjectRepository(CompilationEntity) private readonly compilations: Repository<CompilationEntity>,
    private readonly temporal: Client,
  ) {}

  async findQueuesWithoutWorkers(taskQueues: string[]): Promise<string[]> {
    const served = await queuesWithWorkers(this.temporal, taskQueues, await runningBuildsOn(this.builds, taskQueues));
    return taskQueues.filter((q) => !served.has(q));
  }

  async updateBuild(update: BuildUpdate): Promise<void> {
    const terminal = TERMINAL_BUILD_STATUSES.includes(update.status);
    // A build that already ended (e.g. succeeded just before a cancel) keeps its outcome.
    const from = update.fromStatuses ?? [];
    await this.builds.update(
      { id: update.buildId, status: from.length > 0 ? In(from) : Not(In([...TERMINAL_BUILD_STATUSES])) },
      {
        status: update.status,
        ...(update.errorCode !== undefined ? { errorCode: update.errorCode } : {}),
        ...(update.errorMessage !== undefined ? { errorMessage: update.errorMessage } : {}),
        ...(terminal ? { finishedAt: new Date() } : {}),
      },
    );
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
    await this.compilations.update({ id: input.compilationId }, { status, finishedAt: new Date() });
    return status;
  }
}
