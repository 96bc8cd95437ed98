import { Injectable, Logger } from '@nestjs/common';
import { Client, WorkflowExecutionAlreadyStartedError } from '@temporalio/client';
import { DataSource, LessThan } from 'typeorm';
import { KilnConfig } from '@kiln/config';
import { TERMINAL_BUILD_STATUSES } from '@kiln/contracts';
import { BuildEntity, CompilationEntity } from '@kiln/database';
import { taskQueueFor } from '@kiln/targets';
import { COMPILE_MODEL_WORKFLOW, type CompileModelInput, ORCHESTRATOR_TASK_QUEUE } from '@kiln/temporal';

/** A pending compilation younger than this may still be starting in the request that created it. */
const RECONCILE_AFTER_MS = 5_000;

/**
 * Starts the CompileModel workflow of a compilation recorded as `pending`. The API calls it right after writing the
 * compilation's rows; the `kiln-reconcile-compilations` Temporal Schedule (orchestrator) calls reconcilePending for
 * the ones whose start failed (Temporal down, an API replica killed in between). The workflow id is the
 * compilation's, so a double start is a no-op.
 */
@Injectable()
export class CompilationStarter {
  private readonly logger = new Logger(CompilationStarter.name);

  constructor(
    private readonly dataSource: DataSource,
    private readonly temporal: Client,
    private readonly config: KilnConfig,
  ) {}

  /** Starts (or finds already started) the workflow of a pending compilation; it stays pending on failure. */
  async start(compilationId: string): Promise<boolean> {
    const compilations = this.dataSource.getRepository(CompilationEntity);
    const compilation = await compilations.findOneByOrFail({ id: compilationId });
    const builds = await this.dataSource.getRepository(BuildEntity).find({ where: { compilationId } });
    const pending = builds.filter((b) => !TERMINAL_BUILD_STATUSES.includes(b.status));
    const input: CompileModelInput = {
      compilationId,
      tenantId: compilation.tenantId,
      modelVersionId: compilation.modelVersionId,
      builds: pending.map((b) => ({
        buildId: b.id,
        targetId: b.targetId,
        taskQueue: taskQueueFor(b.targetId),
        cacheKey: b.cacheKey,
      })),
      waitForWorkerSeconds: this.config.KILN_BUILD_WAIT_FOR_WORKER_S,
      ...(compilation.reproduce ? { reproduce: true } : {}),
      buildTimeoutSeconds: this.config.KILN_BUILD_TIMEOUT_S,
    };
    try {
      await this.temporal.workflow.start(COMPILE_MODEL_WORKFLOW, {
        workflowId: compilation.workflowId,
        taskQueue: ORCHESTRATOR_TASK_QUEUE,
        args: [input],
        // Fair share of the orchestrator queue too (the builds set the same key on their queues).
        priority: { fairnessKey: compilation.tenantId },
      });
    } catch (err) {
      if (!(err instanceof WorkflowExecutionAlreadyStartedError)) {
        this.logger.warn(`Could not start ${compilation.workflowId} yet (will retry): ${String(err)}`);
        return false;
      }
    }
    await compilations.update({ id: compilationId, status: 'pending' }, { status: 'running' });
    return true;
  }

  /**
   * Starts the workflows of compilations that were recorded but whose start failed; returns how many it started.
   * At most 50 a pass, oldest first: the next run of the schedule takes the rest.
   */
  async reconcilePending(now = Date.now()): Promise<number> {
    const stale = await this.dataSource.getRepository(CompilationEntity).find({
      where: { status: 'pending', createdAt: LessThan(new Date(now - RECONCILE_AFTER_MS)) },
      order: { createdAt: 'ASC' },
      take: 50,
    });
    let started = 0;
    for (const c of stale) if (await this.start(c.id)) started++;
    if (started > 0) this.logger.log(`Started ${started} pending compilation(s).`);
    return started;
  }
}
