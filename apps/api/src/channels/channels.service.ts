import { Injectable } from '@nestjs/common';
import { InjectDataSource, InjectRepository } from '@nestjs/typeorm';
import { DataSource, In, Repository } from 'typeorm';
import { ErrorCode, KilnError } from '@kiln/contracts';
import { WebhookEmitter } from '@kiln/core';
import { ChannelEntity, ChannelMoveEntity, ModelVersionEntity, RolloutEntity } from '@kiln/database';
import type { AuthContext } from '../auth/auth-context.js';
import { ModelsService } from '../models/models.service.js';
import type { ChannelMoveResponseDto, ChannelResponseDto, MoveChannelDto } from './channels.dto.js';

export const CHANNEL_NAME = /^[a-z0-9][a-z0-9._-]{0,62}$/;

@Injectable()
export class ChannelsService {
  constructor(
    @InjectRepository(ChannelEntity) private readonly channels: Repository<ChannelEntity>,
    @InjectRepository(ChannelMoveEntity) private readonly moves: Repository<ChannelMoveEntity>,
    @InjectRepository(ModelVersionEntity) private readonly versions: Repository<ModelVersionEntity>,
    @InjectDataSource() private readonly dataSource: DataSource,
    private readonly models: ModelsService,
    private readonly webhooks: WebhookEmitter,
  ) {}

  async list(tenantId: string, modelId: string): Promise<ChannelResponseDto[]> {
    await this.models.require(tenantId, modelId);
    const rows = await this.channels.find({
      where: { tenantId, modelId },
      relations: { version: true },
      order: { name: 'ASC' },
    });
    return rows.map((c) => this.toResponse(c, c.version!.number));
  }

  /** Points a channel at a version (creating the channel on first use) and records the move. */
  async move(auth: AuthContext, modelId: string, name: string, dto: MoveChannelDto): Promise<ChannelResponseDto> {
    this.requireName(name);
    await this.models.require(auth.tenantId, modelId);
    if ((dto.versionId === undefined) === (dto.version === undefined)) {
      throw new KilnError(ErrorCode.VALIDATION_FAILED, 'Give exactly one of versionId or version.');
    }
    const version = await this.versions.findOne({
      where: dto.versionId
        ? { id: dto.versionId, modelId, tenantId: auth.tenantId }
        : { number: dto.version, modelId, tenantId: auth.tenantId },
    });
    if (!version) throw new KilnError(ErrorCode.NOT_FOUND, 'This model has no such version.');

    let moved: { fromVersionId: string | null } | null = null;
    const channel = await this.dataSource.transaction(async (tx) => {
      // A staged rollout owns the channel until it ends: a direct move would pull the ground from under it.
      const existing = await tx.getRepository(ChannelEntity).findOne({ where: { modelId, name } });
      const rollout = existing
        ? await tx
            .getRepository(RolloutEntity)
            .findOne({ where: { channelId: existing.id, status: In(['running', 'paused']) } })
        : null;
      if (rollout) {
        throw new KilnError(
          ErrorCode.ROLLOUT_IN_PROGRESS,
          `Channel "${name}" is in a rollout (${rollout.id}): roll it back or let it finish before moving the channel.`,
          { rolloutId: rollout.id },
        );
      }
      const repo = tx.getRepository(ChannelEntity);
      const record = (channelId: string, fromVersionId: string | null): Promise<unknown> =>
        tx.getRepository(ChannelMoveEntity).insert({
          tenantId: auth.tenantId,
          channelId,
          fromVersionId,
          toVersionId: version.id,
          movedByKeyId: auth.keyId,
        });
      const where = { modelId, name };
      let current = await repo.findOne({ where, lock: { mode: 'pessimistic_write' } });
      if (!current) {
        // ON CONFLICT DO NOTHING: if a concurrent request created it first, fall through to a normal move.
        const inserted = await repo
          .createQueryBuilder()
          .insert()
          .values({ tenantId: auth.tenantId, modelId, name, versionId: version.id })
          .orIgnore()
          .returning(['id'])
          .execute();
        const id = (inserted.raw as { id: string }[])[0]?.id;
        if (id) {
          await record(id, null);
          moved = { fromVersionId: null };
          return repo.findOneOrFail({ where: { id } });
        }
        current = await repo.findOneOrFail({ where, lock: { mode: 'pessimistic_write' } });
      }
      if (current.versionId !== version.id) {
        await repo.update({ id: current.id }, { versionId: version.id });
        await record(current.id, current.versionId);
        moved = { fromVersionId: current.versionId };
      }
      return repo.findOneOrFail({ where: { id: current.id } });
    });
    if (moved) {
      await this.webhooks.emit(auth.tenantId, 'channel.moved', {
        modelId,
        channel: name,
        fromVersionId: (moved as { fromVersionId: string | null }).fromVersionId,
        toVersionId: version.id,
        toVersion: version.number,
        movedByKeyId: auth.keyId,
      });
    }
    return this.toResponse(channel, version.number);
  }

  async history(tenantId: string, modelId: string, name: string): Promise<ChannelMoveResponseDto[]> {
    await this.models.require(tenantId, modelId);
    const channel = await this.channels.findOne({ where: { tenantId, modelId, name } });
    if (!channel) throw new KilnError(ErrorCode.NOT_FOUND, `This model has no channel "${name}".`);
    const rows = await this.moves.find({ where: { channelId: channel.id }, order: { movedAt: 'DESC' } });
    const numbers = new Map(
      (await this.versions.find({ where: { modelId }, select: { id: true, number: true } })).map((v) => [
        v.id,
        v.number,
      ]),
    );
    return rows.map((m) => ({
      fromVersion: m.fromVersionId ? (numbers.get(m.fromVersionId) ?? null) : null,
      toVersion: numbers.get(m.toVersionId) ?? 0,
      movedByKeyId: m.movedByKeyId,
      movedAt: m.movedAt.toISOString(),
    }));
  }

  private requireName(name: string): void {
    if (!CHANNEL_NAME.test(name)) {
      throw new KilnError(
        ErrorCode.VALIDATION_FAILED,
        'Channel names are lower-case letters, digits, ".", "_" and "-".',
      );
    }
  }

  private toResponse(c: ChannelEntity, versionNumber: number): ChannelResponseDto {
    return {
      name: c.name,
      modelId: c.modelId,
      versionId: c.versionId,
      versionNumber,
      updatedAt: c.updatedAt.toISOString(),
    };
  }
}
