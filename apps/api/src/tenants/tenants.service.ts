import { Injectable } from '@nestjs/common';
import { InjectRepository } from '@nestjs/typeorm';
import { Repository } from 'typeorm';
import { ErrorCode, KilnError } from '@kiln/contracts';
import { TenantEntity } from '@kiln/database';
import { ApiKeysService } from '../auth/api-keys.service.js';
import { toApiKeySummary } from '../auth/keys.dto.js';
import { QuotasService } from '../fair-use/quotas.service.js';
import type { TenantQuotasResponseDto, TenantResponseDto, UpdateTenantQuotasDto } from './tenants.dto.js';

@Injectable()
export class TenantsService {
  constructor(
    @InjectRepository(TenantEntity) private readonly tenants: Repository<TenantEntity>,
    private readonly apiKeys: ApiKeysService,
    private readonly quotas: QuotasService,
  ) {}

  async create(name: string): Promise<TenantResponseDto> {
    const tenant = await this.tenants.save(this.tenants.create({ name }));
    const { key, entity } = await this.apiKeys.issue(tenant.id, { kind: 'api', name: 'initial key' });
    return {
      id: tenant.id,
      name: tenant.name,
      createdAt: tenant.createdAt.toISOString(),
      apiKey: { ...toApiKeySummary(entity), key },
    };
  }

  async require(tenantId: string): Promise<TenantEntity> {
    const tenant = await this.tenants.findOne({ where: { id: tenantId } });
    if (!tenant) throw new KilnError(ErrorCode.NOT_FOUND, 'No such tenant.');
    return tenant;
  }

  async quotasOf(tenantId: string): Promise<TenantQuotasResponseDto> {
    await this.require(tenantId);
    return { tenantId, ...(await this.quotas.quotasOf(tenantId)) };
  }

  async updateQuotas(tenantId: string, dto: UpdateTenantQuotasDto): Promise<TenantQuotasResponseDto> {
    await this.require(tenantId);
    const changes: Partial<TenantEntity> = {
      ...(dto.concurrentBuilds !== undefined ? { quotaConcurrentBuilds: dto.concurrentBuilds } : {}),
      ...(dto.uploadsPerHour !== undefined ? { quotaUploadsPerHour: dto.uploadsPerHour } : {}),
      ...(dto.storedBytes !== undefined ? { quotaStoredBytes: dto.storedBytes } : {}),
      ...(dto.rateLimitPerMinute !== undefined ? { rateLimitPerMinute: dto.rateLimitPerMinute } : {}),
    };
    if (Object.keys(changes).length > 0) await this.tenants.update({ id: tenantId }, changes);
    // Cached keys carry their tenant's rate limit (other replicas hear the tenants trigger).
    this.apiKeys.evictAll();
    return this.quotasOf(tenantId);
  }
}
