import { randomUUID } from 'node:crypto';
import { Injectable } from '@nestjs/common';
import { InjectDataSource, InjectRepository } from '@nestjs/typeorm';
import { Client } from '@temporalio/client';
import { DataSource, In, Repository } from 'typeorm';
import { type CompilationStatus, ErrorCode, KilnError } from '@kiln/contracts';
import { CompilationStarter } from '@kiln/core';
import { ArtifactEntity, BuildEntity, CompilationEntity } from '@kiln/database';
import { cacheKey, findTarget, taskQueueFor, TARGETS } from '@kiln/targets';
import { compileWorkflowId, queuesWithWorkers, runningBuildsOn } from '@kiln/temporal';
import { QuotasService } from '../fair-use/quotas.service.js';
import { VersionsService } from '../versions/versions.service.js';
import type { BuildResponseDto, CompilationResponseDto } from './compilations.dto.js';

const TERMINAL_COMPILATION: CompilationStatus[] = ['succeeded', 'partial', 'failed', 'cancelled'];

export function toCompilationResponse(c: CompilationEntity, builds: BuildEntity[]): CompilationResponseDto {
  const order = new Map(c.targets.map((t, i) => [t, i]));
  return {
    id: c.id,
    modelVersionId: c.modelVersionId,
    status: c.status,
    targets: c.targets,
    reproduce: c.reproduce,
    createdAt: c.createdAt.toISOString(),
    finishedAt: c.finishedAt?.toISOString() ?? null,
    builds: [...builds]
      .sort((a, b) => (order.get(a.targetId) ?? 0) - (order.get(b.targetId) ?? 0))
      .map(toBuildResponse),
    warnings: builds
      .filter((b) => b.status === 'waiting_for_worker')
      .map((b) => ({
        targetId: b.targetId,
        code: ErrorCode.NO_WORKER,
        message:
          `No worker serves ${b.targetId} right now; the build waits for one and fails with NO_WORKER ` +
          `if none comes.`,
      })),
  };
}

function toBuildResponse(b: BuildEntity): BuildResponseDto {
  const a = b.artifact;
  return {
    targetId: b.targetId,
    status: b.status,
    phase: b.phase,
    attempt: b.attempt,
    errorCode: b.errorCode,
    errorMessage: b.errorMessage,
    artifact: a
      ? {
          id: a.id,
          sizeBytes: a.sizeBytes,
          speedup: a.manifest.timing.speedup,
          maxAbsError: a.manifest.verification.maxAbsError,
        }
      : null,
    startedAt: b.startedAt?.toISOString() ?? null,
    finishedAt: b.finishedAt?.toISOString() ?? null,
  };
}

@Injectable()
export class CompilationsService {
  constructor(
    @InjectRepository(CompilationEntity) private readonly compilations: Repository<CompilationEntity>,
    @InjectRepository(BuildEntity) private readonly builds: Repository<BuildEntity>,
    @InjectRepository(ArtifactEntity) private readonly artifacts: Repository<ArtifactEntity>,
    @InjectDataSource() private readonly dataSource: DataSource,
    private readonly versions: VersionsService,
    private readonly temporal: Client,
    private readonly quotas: QuotasService,
    private readonly starter: CompilationStarter,
  ) {}

  /**
   * Plans one build per target. Targets whose artifact already exists (same tenant, model content and
   * recipe) are answered from the cache at once and never reach a worker; the rest go to one CompileModel
   * workflow. The rows are written first and the workflow is started by id, so a crash in between is
   * repaired by the reconcile schedule (CompilationStarter) and a double start is a no-op. With `reproduce`, each
   * build that runs is built twice and compared (the worker's build activity); a cached target is not checked.
   */
  async create(
    tenantId: string,
    versionId: string,
    targetIds: string[],
    idempotencyKey: string | null,
    options: { reproduce?: boolean } = {},
  ): Promise<{ compilation: CompilationResponseDto; created: boolean }> {
    if (idempotencyKey) {
      const existing = await this.compilations.findOne({ where: { tenantId, idempotencyKey } });
      if (existing) return { compilation: await this.get(tenantId, existing.id), created: false };
    }
    const version = await this.versions.require(tenantId, versionId);
    const unknown = targetIds.filter((t) => !findTarget(t));
    if (unknown.length > 0) {
      throw new KilnError(
        ErrorCode.UNKNOWN_TARGET,
        `Unknown target(s): ${unknown.join(', ')}. Known: ${TARGETS.map((t) => t.id).join(', ')}.`,
        { unknown, known: TARGETS.map((t) => t.id) },
      );
    }

    const compilationId = randomUUID();
    const planned = await Promise.all(
      targetIds.map(async (targetId) => {
        const recipe = findTarget(targetId)!.recipe;
        const key = cacheKey({ tenantId, modelContentHash: version.contentHash, recipe });
        const cached = await this.artifacts.findOne({ where: { tenantId, cacheKey: key } });
        return { targetId, cacheKey: key, cached };
      }),
    );
    const now = new Date();
    const allCached = planned.every((p) => p.cached);
    // Said when the compilation is created: a target no worker serves (none polls its queue, none runs a build of
    // it) starts as waiting_for_worker, and the answer carries a NO_WORKER warning for it.
    const queues = planned.filter((p) => !p.cached).map((p) => taskQueueFor(p.targetId));
    const served =
      queues.length > 0
        ? await queuesWithWorkers(this.temporal, queues, await runningBuildsOn(this.builds, queues)).catch(
            // Temporal unreachable: the reconciler starts the workflow later, which checks again.
            () => new Set(queues),
          )
        : new Set<string>();
    try {
      await this.dataSource.transaction(async (tx) => {
        await this.quotas.lockTenant(tx, tenantId);
        await this.quotas.assertBuildsFit(tx, tenantId, queues.length);
        await tx.getRepository(CompilationEntity).insert({
          id: compilationId,
          tenantId,
          modelVersionId: version.id,
          targets: targetIds,
          status: allCached ? 'succeeded' : 'pending',
          workflowId: compileWorkflowId(compilationId),
          idempotencyKey,
          reproduce: options.reproduce ?? false,
          finishedAt: allCached ? now : null,
        });
        await tx.getRepository(BuildEntity).insert(
          planned.map((p) => ({
            tenantId,
            compilationId,
            targetId: p.targetId,
            cacheKey: p.cacheKey,
            status: p.cached ? 'cached' : served.has(taskQueueFor(p.targetId)) ? 'queued' : 'waiting_for_worker',
            phase: p.cached ? 'done' : null,
            artifactId: p.cached?.id ?? null,
            finishedAt: p.cached ? now : null,
          })),
        );
      });
    } catch (err) {
      // Two concurrent requests with the same idempotency key: the loser returns the winner's compilation.
      if (idempotencyKey && (err as { driverError?: { code?: string } }).driverError?.code === '23505') {
        const existing = await this.compilations.findOneOrFail({ where: { tenantId, idempotencyKey } });
        return { compilation: await this.get(tenantId, existing.id), created: false };
      }
      throw err;
    }
    if (!allCached) await this.starter.start(compilationId);
    return { compilation: await this.get(tenantId, compilationId), created: true };
  }

  async get(tenantId: string, compilationId: string): Promise<CompilationResponseDto> {
    const compilation = await this.require(tenantId, compilationId);
    const builds = await this.builds.find({ where: { compilationId }, relations: { artifact: true } });
    return toCompilationResponse(compilation, builds);
  }

  async list(tenantId: string, versionId?: string): Promise<CompilationResponseDto[]> {
    const rows = await this.compilations.find({
      where: { tenantId, ...(versionId ? { modelVersionId: versionId } : {}) },
      order: { createdAt: 'DESC' },
      take: 100,
    });
    const builds = rows.length
      ? await this.builds.find({ where: { compilationId: In(rows.map((r) => r.id)) }, relations: { artifact: true } })
      : [];
    return rows.map((c) =>
      toCompilationResponse(
        c,
        builds.filter((b) => b.compilationId === c.id),
      ),
    );
  }

  async log(tenantId: string, compilationId: string, targetId: string): Promise<{ targetId: string; log: string }> {
    await this.require(tenantId, compilationId);
    const build = await this.builds.findOne({ where: { compilationId, targetId } });
    if (!build) throw new KilnError(ErrorCode.NOT_FOUND, `This compilation has no build for ${targetId}.`);
    return { targetId, log: build.log };
  }

  async cancel(tenantId: string, compilationId: string): Promise<CompilationResponseDto> {
    const compilation = await this.require(tenantId, compilationId);
    if (TERMINAL_COMPILATION.includes(compilation.status)) {
      throw new KilnError(ErrorCode.CONFLICT, `The compilation already ended (${compilation.status}).`);
    }
    await this.temporal.workflow.getHandle(compilation.workflowId).cancel();
    return this.get(tenantId, compilationId);
  }

  private async require(tenantId: string, compilationId: string): Promise<CompilationEntity> {
    const compilation = await this.compilations.findOne({ where: { id: compilationId, tenantId } });
    if (!compilation) throw new KilnError(ErrorCode.NOT_FOUND, 'No such compilation.');
    return compilation;
  }
}
