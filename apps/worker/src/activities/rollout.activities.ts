import { Injectable, Logger } from '@nestjs/common';
import { InjectDataSource } from '@nestjs/typeorm';
import { DataSource, type EntityManager } from 'typeorm';
import { WebhookEmitter } from '@kiln/core';
import {
  ChannelEntity,
  ChannelMoveEntity,
  type RolloutClassState,
  RolloutEntity,
  RolloutEventEntity,
  type RolloutEventKind,
  RolloutStatsEntity,
} from '@kiln/database';
import type { GateBreach, GateVerdict, RolloutActivities, RolloutControl, RolloutGateSettings } from '@kiln/temporal';
import { type ArmStats, type ClassStageStats, judgeClass } from './rollout-gates.js';

/**
 * The rollout workflow's bookkeeping (orchestrator queue): the workflow decides, these record. Every one is
 * idempotent: it locks the rollout row, looks at what is already recorded and changes only what is not, so a
 * retried activity never records a step twice. docs/fleet.md.
 */
@Injectable()
export class RolloutActivitiesService implements RolloutActivities {
  private readonly logger = new Logger(RolloutActivitiesService.name);

  constructor(
    @InjectDataSource() private readonly dataSource: DataSource,
    private readonly webhooks: WebhookEmitter,
  ) {}

  async enterStage(input: { rolloutId: string; stageIndex: number }): Promise<void> {
    await this.dataSource.transaction(async (tx) => {
      const rollout = await this.lock(tx, input.rolloutId);
      if (!rollout || this.isFinished(rollout) || rollout.stageIndex >= input.stageIndex) return;
      const from = rollout.stages[rollout.stageIndex];
      const to = rollout.stages[input.stageIndex];
      await tx
        .getRepository(RolloutEntity)
        .update({ id: rollout.id }, { stageIndex: input.stageIndex, stageStartedAt: new Date() });
      await this.event(tx, rollout, 'promoted', input.stageIndex, {
        message: `stage ${rollout.stageIndex + 1} (${from} %) held its gates: promoted to stage ${input.stageIndex + 1} (${to} % of devices)`,
        actor: 'gate',
      });
      this.logger.log(`rollout ${rollout.id}: promoted to ${to} %`);
    });
  }

  async evaluateGates(input: {
    rolloutId: string;
    stageIndex: number;
    gates: RolloutGateSettings;
  }): Promise<GateVerdict> {
    const rollout = await this.dataSource.getRepository(RolloutEntity).findOneByOrFail({ id: input.rolloutId });
    const rows = await this.dataSource
      .getRepository(RolloutStatsEntity)
      .find({ where: { rolloutId: input.rolloutId, stageIndex: input.stageIndex } });
    const everNew = new Set(
      (
        await this.dataSource.query<{ device_class: string }[]>(
          `SELECT DISTINCT device_class FROM rollout_stats WHERE rollout_id = $1 AND arm = 'new'`,
          [input.rolloutId],
        )
      ).map((r) => r.device_class),
    );
    const byClass = new Map<string, ClassStageStats>();
    for (const r of rows) {
      const c =
        byClass.get(r.deviceClass) ??
        byClass
          .set(r.deviceClass, { deviceClass: r.deviceClass, label: r.deviceClassLabel, new: null, previous: null })
          .get(r.deviceClass)!;
      const arm: ArmStats = {
        reports: r.reports,
        failures: r.failures,
        failureCodes: r.failureCodes,
        latencySamples: r.latencySamples,
        logMsSum: r.logMsSum,
        logMsSqSum: r.logMsSqSum,
      };
      if (r.arm === 'new') c.new = arm;
      else c.previous = arm;
    }
    const rolledBack = (key: string): boolean => rollout.classStates[key]?.status === 'rolled_back';
    const breaches: GateBreach[] = [];
    let newReports = 0;
    for (const c of [...byClass.values()].sort((a, b) => (a.deviceClass < b.deviceClass ? -1 : 1))) {
      if (rolledBack(c.deviceClass)) continue;
      const breach = judgeClass(c, input.gates);
      if (breach) breaches.push(breach);
      else newReports += c.new?.reports ?? 0;
    }
    const broken = new Set(breaches.map((b) => b.deviceClass));
    const activeClasses = [...everNew].filter((k) => !rolledBack(k) && !broken.has(k)).length;
    const rolledBackClasses =
      Object.values(rollout.classStates).filter((s) => s.status === 'rolled_back').length + broken.size;
    return { breaches, newReports, activeClasses, rolledBackClasses };
  }

  async rollBackClasses(input: { rolloutId: string; stageIndex: number; breaches: GateBreach[] }): Promise<void> {
    await this.dataSource.transaction(async (tx) => {
      const rollout = await this.lock(tx, input.rolloutId);
      if (!rollout || this.isFinished(rollout)) return;
      const states: Record<string, RolloutClassState> = { ...rollout.classStates };
      const fresh = input.breaches.filter((b) => states[b.deviceClass]?.status !== 'rolled_back');
      if (fresh.length === 0) return;
      for (const b of fresh) {
        states[b.deviceClass] = {
          label: b.label,
          status: 'rolled_back',
          reason: b.message,
          at: new Date().toISOString(),
        };
      }
      await tx.getRepository(RolloutEntity).update({ id: rollout.id }, { classStates: states });
      for (const b of fresh) {
        await this.event(tx, rollout, 'class_rolled_back', input.stageIndex, {
          deviceClass: b.deviceClass,
          message: `${b.label}: ${b.message}; this class is rolled back to the previous version, the others go on`,
          detail: { gate: b.gate, label: b.label, ...b.detail },
          actor: 'gate',
        });
        this.logger.warn(`rollout ${rollout.id}: rolled back class ${b.label}: ${b.message}`);
      }
    });
  }

  async setPaused(input: { rolloutId: string; paused: boolean; control: RolloutControl }): Promise<void> {
    await this.dataSource.transaction(async (tx) => {
      const rollout = await this.lock(tx, input.rolloutId);
      const want = input.paused ? 'paused' : 'running';
      if (!rollout || this.isFinished(rollout) || rollout.status === want) return;
      await tx.getRepository(RolloutEntity).update({ id: rollout.id }, { status: want });
      await this.event(tx, rollout, input.paused ? 'paused' : 'resumed', rollout.stageIndex, {
        message: input.paused
          ? `paused at stage ${rollout.stageIndex + 1} (${rollout.stages[rollout.stageIndex]} %): no promotion until resumed`
          : `resumed at stage ${rollout.stageIndex + 1}: the stage's hold starts over`,
        detail: input.control.reason ? { reason: input.control.reason } : {},
        actor: input.control.actor,
      });
    });
  }

  async finishRollout(input: {
    rolloutId: string;
    outcome: 'completed' | 'rolled_back';
    control: RolloutControl;
    halted?: boolean;
  }): Promise<void> {
    // What the tenant's webhooks hear of it, once the transaction committed (a retry finds it finished: nothing).
    const events: { type: 'channel.moved' | 'rollout.halted'; tenantId: string; data: Record<string, unknown> }[] = [];
    await this.dataSource.transaction(async (tx) => {
      const rollout = await this.lock(tx, input.rolloutId);
      if (!rollout || this.isFinished(rollout)) return;
      const now = new Date();
      if (input.outcome === 'completed') {
        // The channel moves only now; classes rolled back on the way keep the previous version (the resolver reads
        // them from this rollout as long as the channel stays at its version).
        const channels = tx.getRepository(ChannelEntity);
        const channel = await channels.findOne({
          where: { id: rollout.channelId },
          lock: { mode: 'pessimistic_write' },
        });
        if (channel && channel.versionId !== rollout.toVersionId) {
          await channels.update({ id: channel.id }, { versionId: rollout.toVersionId });
          await tx.getRepository(ChannelMoveEntity).insert({
            tenantId: rollout.tenantId,
            channelId: channel.id,
            fromVersionId: channel.versionId,
            toVersionId: rollout.toVersionId,
            movedByKeyId: rollout.createdByKeyId,
          });
          events.push({
            type: 'channel.moved',
            tenantId: rollout.tenantId,
            data: {
              modelId: rollout.modelId,
              channel: channel.name,
              fromVersionId: channel.versionId,
              toVersionId: rollout.toVersionId,
              rolloutId: rollout.id,
            },
          });
        }
        await tx.getRepository(RolloutEntity).update({ id: rollout.id }, { status: 'completed', finishedAt: now });
        const excluded = Object.values(rollout.classStates).filter((c) => c.status === 'rolled_back');
        await this.event(tx, rollout, 'completed', rollout.stageIndex, {
          message:
            `every stage held its gates: the channel now points at the new version` +
            (excluded.length > 0
              ? `; ${excluded.length} device class${excluded.length === 1 ? '' : 'es'} rolled back on the way keep the previous one (${excluded.map((c) => c.label).join('; ')})`
              : ''),
          actor: input.control.actor,
        });
        return;
      }
      await tx.getRepository(RolloutEntity).update({ id: rollout.id }, { status: 'rolled_back', finishedAt: now });
      if (input.halted) {
        await this.event(tx, rollout, 'halted', rollout.stageIndex, {
          message: `halted at stage ${rollout.stageIndex + 1}: ${input.control.reason ?? 'a gate broke'}`,
          actor: input.control.actor,
        });
        events.push({
          type: 'rollout.halted',
          tenantId: rollout.tenantId,
          data: {
            rolloutId: rollout.id,
            modelId: rollout.modelId,
            channelId: rollout.channelId,
            stage: rollout.stageIndex + 1,
            reason: input.control.reason ?? 'a gate broke',
          },
        });
      }
      await this.event(tx, rollout, 'rolled_back', rollout.stageIndex, {
        message: `rolled back: every device gets the previous version again${input.control.reason ? ` (${input.control.reason})` : ''}`,
        detail: input.control.reason ? { reason: input.control.reason } : {},
        actor: input.control.actor,
      });
    });
    for (const e of events) await this.webhooks.emit(e.tenantId, e.type, e.data);
  }

  private lock(tx: EntityManager, id: string): Promise<RolloutEntity | null> {
    return tx.getRepository(RolloutEntity).findOne({ where: { id }, lock: { mode: 'pessimistic_write' } });
  }

  private isFinished(r: RolloutEntity): boolean {
    return r.status === 'completed' || r.status === 'rolled_back';
  }

  private async event(
    tx: EntityManager,
    rollout: RolloutEntity,
    kind: RolloutEventKind,
    stageIndex: number,
    e: { message: string; actor: string; deviceClass?: string; detail?: Record<string, unknown> },
  ): Promise<void> {
    // jsonb detail: TypeORM's insert typing cannot describe an open record, the entity says what it is.
    const row: Omit<RolloutEventEntity, 'id' | 'at' | 'rollout'> = {
      rolloutId: rollout.id,
      tenantId: rollout.tenantId,
      kind,
      stageIndex,
      percent: rollout.stages[stageIndex] ?? 100,
      deviceClass: e.deviceClass ?? null,
      message: e.message,
      detail: e.detail ?? {},
      actor: e.actor,
    };
    await tx.getRepository(RolloutEventEntity).insert(row as object);
  }
}
