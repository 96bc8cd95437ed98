import { Injectable } from '@nestjs/common';
import { InjectRepository } from '@nestjs/typeorm';
import { QueryFailedError, Repository } from 'typeorm';
import { ErrorCode, KilnError } from '@kiln/contracts';
import { ModelEntity, ModelVersionEntity } from '@kiln/database';
import type { CreateModelDto, ModelResponseDto } from './models.dto.js';

export const toModelResponse = (m: ModelEntity, latestVersion: number | null): ModelResponseDto => ({
  id: m.id,
  name: m.name,
  description: m.description,
  createdAt: m.createdAt.toISOString(),
  latestVersion,
});

@Injectable()
export class ModelsService {
  constructor(
    @InjectRepository(ModelEntity) private readonly models: Repository<ModelEntity>,
    @InjectRepository(ModelVersionEntity) private readonly versions: Repository<ModelVersionEntity>,
  ) {}

  async create(tenantId: string, dto: CreateModelDto): Promise<ModelResponseDto> {
    try {
      const model = await this.models.save(
        this.models.create({ tenantId, name: dto.name, description: dto.description ?? '' }),
      );
      return toModelResponse(model, null);
    } catch (err) {
      if (err instanceof QueryFailedError && (err.driverError as { code?: string }).code === '23505') {
        throw new KilnError(ErrorCode.CONFLICT, `A model named "${dto.name}" already exists.`);
      }
      throw err;
    }
  }

  async list(tenantId: string): Promise<ModelResponseDto[]> {
    const models = await this.models.find({ where: { tenantId }, order: { createdAt: 'DESC' } });
    const latest = await this.latestVersionNumbers(tenantId);
    return models.map((m) => toModelResponse(m, latest.get(m.id) ?? null));
  }

  async get(tenantId: string, modelId: string): Promise<ModelResponseDto> {
    const model = await this.require(tenantId, modelId);
    const latest = await this.latestVersionNumbers(tenantId, modelId);
    return toModelResponse(model, latest.get(model.id) ?? null);
  }

  /** The tenant's model, or NOT_FOUND (also when it belongs to another tenant: no existence leak). */
  async require(tenantId: string, modelId: string): Promise<ModelEntity> {
    const model = await this.models.findOne({ where: { id: modelId, tenantId } });
    if (!model) throw new KilnError(ErrorCode.NOT_FOUND, 'No such model.');
    return model;
  }

  private async latestVersionNumbers(tenantId: string, modelId?: string): Promise<Map<string, number>> {
    const qb = this.versions
      .createQueryBuilder('v')
      .select('v.model_id', 'modelId')
      .addSelect('MAX(v.number)', 'latest')
      .where('v.tenant_id = :tenantId', { tenantId })
      .groupBy('v.model_id');
    if (modelId) qb.andWhere('v.model_id = :modelId', { modelId });
    const rows = await qb.getRawMany<{ modelId: string; latest: number }>();
    return new Map(rows.map((r) => [r.modelId, Number(r.latest)]));
  }
}
