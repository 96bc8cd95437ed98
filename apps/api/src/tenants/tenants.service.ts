import { Injectable } from '@nestjs/common';
import { InjectRepository } from '@nestjs/typeorm';
import { Repository } from 'typeorm';
import { ErrorCode, KilnError } from '@kiln/contracts';
import { type ApiKeyKind, TenantEntity } from '@kiln/database';
import { ApiKeysService } from '../auth/api-keys.service.js';
import type { ApiKeyResponseDto, TenantResponseDto } from './tenants.dto.js';

@Injectable()
export class TenantsService {
  constructor(
    @InjectRepository(TenantEntity) private readonly tenants: Repository<TenantEntity>,
    private readonly apiKeys: ApiKeysService,
  ) {}

  async create(name: string): Promise<TenantResponseDto> {
    const tenant = await this.tenants.save(this.tenants.create({ name }));
    const apiKey = await this.createKey(tenant.id, 'api', 'initial key');
    return { id: tenant.id, name: tenant.name, createdAt: tenant.createdAt.toISOString(), apiKey };
  }

  async createKey(tenantId: string, kind: ApiKeyKind, name: string): Promise<ApiKeyResponseDto> {
    if (!(await this.tenants.existsBy({ id: tenantId }))) throw new KilnError(ErrorCode.NOT_FOUND, 'No such tenant.');
    const { key, entity } = await this.apiKeys.create(tenantId, kind, name);
    return { id: entity.id, tenantId, kind, key };
  }
}
