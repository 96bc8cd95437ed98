import { randomUUID } from 'node:crypto';
import { Injectable, Logger } from '@nestjs/common';
import { InjectDataSource, InjectRepository } from '@nestjs/typeorm';
import { ApplicationFailure, Client, WorkflowNotFoundError, WorkflowUpdateFailedError } from '@temporalio/client';
import { DataSource, In, Repository } from 'typeorm';
import { KilnConfig } from '@kiln/config';
import { ErrorCode, KilnError } from '@kiln/contracts';
import {
  ChannelEntity,
  ModelVersionEntity,
  type RolloutGates,
  RolloutEntity,
  RolloutEventEntity,
  RolloutStatsEntity,
} from '@kiln/database';
import {
  ORCHESTRATOR_TASK_QUEUE,
  ROLLOUT_PAUSE_UPDATE,
  ROLLOUT_RESUME_UPDATE,
  ROLLOUT_ROLLBACK_UPDATE,
  ROLLOUT_WORKFLOW,
  type RolloutInput,
  rolloutWorkflowId,
} from '@kiln/temporal';
import type { AuthContext } from '../auth/auth-context.js';
import { CHANNEL_NAME } from '../channels/channels.service.js';
import { ModelsService } from '../models/models.service.js';
import type { RolloutControlDto, RolloutResponseDto, StartRolloutDto } from './rollouts.dto.js';

export type RolloutAction = 'pause' | 'resume' | 'rollback';

const UPDATES: Record<RolloutAction, string> = {
  pause: ROLLOUT_PAUSE_UPDATE,
  resume: ROLLOUT_RESUME_UPDATE,
  rollback: ROLLOUT_ROLLBACK_UPDATE,
};

/**
 * Staged rollouts of a channel (docs/fleet.md): the API creates the rollout and starts its workflow
 * (`rollout-<id>`); from then on the workflow alone changes it: promotion, gates, per-class rollback, and the
 * pause/resume/rollback a user asks for, which reach it as Temporal updates (answered once recorded).
 */
@Injectable()
export class RolloutsService {
  private readonly logger = new Logger(RolloutsService.name);

  constructor(
    @InjectRepository(RolloutEntity) private readonly rollouts: Repository<RolloutEntity>,
    @InjectRepository(RolloutEventEntity) private readonly events: Repository<RolloutEventEntity>,
    @InjectRepository(RolloutStatsEntity) private readonly stats: Repository<RolloutStatsEntity>,
    @InjectRepository(ChannelEntity) private readonly channels: Repository<ChannelEntity>,
    @InjectRepository(ModelVersionEntity) private readonly versions: Repository<ModelVersionEntity>,
    @InjectDataSource() private readonly dataSource: DataSource,
    private readonly models: ModelsService,
    private readonly temporal: Client,
    private readonly config: KilnConfig,
  ) {}

  async start(auth: AuthContext, modelId: string, name: string, dto: StartRolloutDto): Promise<RolloutResponseDto> {
    const channel = await this.requireChannel(auth.tenantId, modelId, name);
    if ((dto.versionId === undefined) === (dto.version === undefined)) {
      throw new KilnError(ErrorCode.VALIDATION_FAILED, 'Give exactly one of versionId or version.');
    }
    const version = await this.versions.findOne({
      where: dto.versionId
        ? { id: dto.versionId, modelId, tenantId: auth.tenantId }
        : { number: dto.version, modelId, tenantId: auth.tenantId },
    });
    if (!version) throw new KilnError(ErrorCode.NOT_FOUND, 'This model has no such version.');
    if (version.id === channel.versionId) {
      throw new KilnError(ErrorCode.VALIDATION_FAILED, `Channel "${name}" already points at v${version.number}.`);
    }
    const stages = dto.stages ?? this.config.KILN_ROLLOUT_STAGES.map(Number);
    if (
      stages.length === 0 ||
      stages.some((s, i) => !Number.isInteger(s) || s < 1 || s > 100 || (i > 0 && s <= stages[i - 1])) ||
      stages[stages.length - 1] !== 100
    ) {
      throw new KilnError(
        ErrorCode.VALIDATION_FAILED,
        `Stages are percentages of devices, increasing and ending at 100 (got ${JSON.stringify(stages)}).`,
      );
    }
    const c = this.config;
    const gates: RolloutGates = {
      holdSeconds: dto.gates?.holdSeconds ?? c.KILN_ROLLOUT_HOLD_S,
      checkIntervalSeconds: dto.gates?.checkIntervalSeconds ?? c.KILN_ROLLOUT_CHECK_INTERVAL_S,
      maxErrorRate: dto.gates?.maxErrorRate ?? c.KILN_ROLLOUT_MAX_ERROR_RATE,
      minReports: dto.gates?.minReports ?? c.KILN_ROLLOUT_MIN_REPORTS,
      maxLatencyRatio: dto.gates?.maxLatencyRatio ?? c.KILN_ROLLOUT_MAX_LATENCY_RATIO,
      minReportsToPromote: dto.gates?.minReportsToPromote ?? c.KILN_ROLLOUT_MIN_REPORTS_TO_PROMOTE,
    };

    const id = randomUUID();
    const row = await this.dataSource.transaction(async (tx) => {
      const active = await tx
        .getRepository(RolloutEntity)
        .findOne({ where: { channelId: channel.id, status: In(['running', 'paused']) } });
      if (active) throw this.inProgress(name, active.id);
      const created = tx.getRepository(RolloutEntity).create({
        id,
        tenantId: auth.tenantId,
        modelId,
        channelId: channel.id,
        fromVersionId: channel.versionId,
        toVersionId: version.id,
        stages,
        stageIndex: 0,
        status: 'running',
        gates,
        classStates: {},
        workflowId: rolloutWorkflowId(id),
        createdByKeyId: auth.keyId,
        stageStartedAt: new Date(),
        finishedAt: null,
      });
      try {
        await tx.getRepository(RolloutEntity).insert(created);
      } catch (err) {
        // ux_rollouts_channel_active: another request started one a moment ago.
        if ((err as { code?: string }).code === '23505') throw this.inProgress(name, null);
        throw err;
      }
      await tx.getRepository(RolloutEventEntity).insert({
        rolloutId: id,
        tenantId: auth.tenantId,
        kind: 'started',
        stageIndex: 0,
        percent: stages[0],
        deviceClass: null,
        message: `rollout of v${version.number} on "${name}" started: stage 1 of ${stages.length} (${stages[0]} % of devices)`,
        detail: {},
        actor: auth.keyId,
      } as object);
      return created;
    });

    const input: RolloutInput = { rolloutId: id, tenantId: auth.tenantId, stages, gates };
    try {
      await this.temporal.workflow.start(ROLLOUT_WORKFLOW, {
        workflowId: row.workflowId,
        taskQueue: ORCHESTRATOR_TASK_QUEUE,
        args: [input],
      });
    } catch (err) {
      // Nothing would ever drive it: the rollout does not exist.
      await this.rollouts.delete({ id });
      this.logger.error(`Could not start ${row.workflowId}: ${String(err)}`);
      throw new KilnError(ErrorCode.SERVICE_UNAVAILABLE, 'The workflow service did not answer; nothing was started.');
    }
    return this.get(auth.tenantId, id);
  }

  async list(tenantId: string, modelId: string, name: string): Promise<RolloutResponseDto[]> {
    const channel = await this.requireChannel(tenantId, modelId, name);
    const rows = await this.rollouts.find({ where: { channelId: channel.id }, order: { createdAt: 'DESC' }, take: 50 });
    return Promise.all(rows.map((r) => this.toResponse(r, name)));
  }

  /** The channel's current rollout: running or paused, else the latest one (null when it never had one). */
  async latest(tenantId: string, channelId: string, name: string): Promise<RolloutResponseDto | null> {
    const row = await this.rollouts.findOne({ where: { tenantId, channelId }, order: { createdAt: 'DESC' } });
    return row ? this.toResponse(row, name) : null;
  }

  /** The channel's last completed rollout (its rolled-back classes keep the previous version while the channel stays). */
  async latestCompleted(tenantId: string, channelId: string, name: string): Promise<RolloutResponseDto | null> {
    const row = await this.rollouts.findOne({
      where: { tenantId, channelId, status: 'completed' },
      order: { finishedAt: 'DESC' },
    });
    return row ? this.toResponse(row, name) : null;
  }

  async get(tenantId: string, id: string): Promise<RolloutResponseDto> {
    const row = await this.rollouts.findOne({ where: { id, tenantId }, relations: { channel: true } });
    if (!row) throw new KilnError(ErrorCode.NOT_FOUND, 'No such rollout.');
    return this.toResponse(row, row.channel!.name);
  }

  async control(
    auth: AuthContext,
    id: string,
    action: RolloutAction,
    dto: RolloutControlDto,
  ): Promise<RolloutResponseDto> {
    const row = await this.rollouts.findOne({ where: { id, tenantId: auth.tenantId } });
    if (!row) throw new KilnError(ErrorCode.NOT_FOUND, 'No such rollout.');
    if (row.status === 'completed' || row.status === 'rolled_back') throw this.finished(row.status);
    try {
      await this.temporal.workflow.getHandle(row.workflowId).executeUpdate(UPDATES[action], {
        args: [{ actor: auth.keyId, ...(dto.reason ? { reason: dto.reason } : {}) }],
      });
    } catch (err) {
      if (err instanceof WorkflowNotFoundError) throw this.finished('ended');
      if (err instanceof WorkflowUpdateFailedError && err.cause instanceof ApplicationFailure) {
        if (err.cause.type === 'ROLLOUT_FINISHED') throw this.finished('ended');
      }
      this.logger.error(`${action} of rollout ${id} failed: ${String(err)}`);
      throw new KilnError(ErrorCode.SERVICE_UNAVAILABLE, `Could not ${action} the rollout now; try again.`);
    }
    return this.get(auth.tenantId, id);
  }

  private async requireChannel(tenantId: string, modelId: string, name: string): Promise<ChannelEntity> {
    if (!CHANNEL_NAME.test(name)) {
      throw new KilnError(
        ErrorCode.VALIDATION_FAILED,
        'Channel names are lower-case letters, digits, ".", "_" and "-".',
      );
    }
    await this.models.require(tenantId, modelId);
    const channel = await this.channels.findOne({ where: { tenantId, modelId, name } });
    if (!channel) {
      throw new KilnError(
        ErrorCode.NOT_FOUND,
        `This model has no channel "${name}": point it at a first version (PUT .../channels/${name}), then roll out the next.`,
      );
    }
    return channel;
  }

  private inProgress(name: string, id: string | null): KilnError {
    return new KilnError(
      ErrorCode.ROLLOUT_IN_PROGRESS,
      `Channel "${name}" already has a rollout in progress${id ? ` (${id})` : ''}: let it finish, or roll it back first.`,
      id ? { rolloutId: id } : undefined,
    );
  }

  private finished(status: string): KilnError {
    return new KilnError(ErrorCode.ROLLOUT_FINISHED, `This rollout already ${status.replace('_', ' ')}.`);
  }

  private async toResponse(row: RolloutEntity, channel: string): Promise<RolloutResponseDto> {
    const [events, stats, versions] = await Promise.all([
      this.events.find({ where: { rolloutId: row.id }, order: { at: 'ASC' } }),
      this.stats.find({ where: { rolloutId: row.id }, order: { stageIndex: 'ASC', deviceClass: 'ASC', arm: 'ASC' } }),
      this.versions.find({
        where: { id: In([row.fromVersionId, row.toVersionId]) },
        select: { id: true, number: true },
      }),
    ]);
    const number = (id: string): number => versions.find((v) => v.id === id)?.number ?? 0;
    return {
      id: row.id,
      modelId: row.modelId,
      channel,
      status: row.status,
      fromVersion: number(row.fromVersionId),
      toVersion: number(row.toVersionId),
      stages: row.stages,
      stageIndex: row.stageIndex,
      percent: row.stages[row.stageIndex] ?? 100,
      gates: row.gates,
      // Every class that reported during the rollout; those the gates rolled back say when and why.
      classes: [...new Map([...stats.map((s) => [s.deviceClass, s.deviceClassLabel] as const)]).entries()]
        .concat(Object.entries(row.classStates).map(([k, s]) => [k, s.label] as const))
        .filter(([k], i, all) => all.findIndex(([x]) => x === k) === i)
        .map(([deviceClass, label]) => {
          const s = row.classStates[deviceClass];
          return s
            ? { deviceClass, label: s.label, status: s.status, reason: s.reason, at: s.at }
            : { deviceClass, label, status: 'active', reason: null, at: row.stageStartedAt.toISOString() };
        })
        .sort((a, b) => (a.label < b.label ? -1 : a.label > b.label ? 1 : 0)),
      events: events.map((e) => ({
        kind: e.kind,
        stageIndex: e.stageIndex,
        percent: e.percent,
        deviceClass: e.deviceClass,
        message: e.message,
        detail: e.detail,
        actor: e.actor,
        at: e.at.toISOString(),
      })),
      stats: stats.map((s) => ({
        stageIndex: s.stageIndex,
        deviceClass: s.deviceClass,
        label: s.deviceClassLabel,
        arm: s.arm,
        reports: s.reports,
        failures: s.failures,
        failureCodes: s.failureCodes,
        latencyMs: s.latencySamples > 0 ? Math.exp(s.logMsSum / s.latencySamples) : null,
      })),
      createdByKeyId: row.createdByKeyId,
      createdAt: row.createdAt.toISOString(),
      stageStartedAt: row.stageStartedAt.toISOString(),
      finishedAt: row.finishedAt ? row.finishedAt.toISOString() : null,
    };
  }
}
