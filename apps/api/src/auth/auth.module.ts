import { Module } from '@nestjs/common';
import { APP_GUARD } from '@nestjs/core';
import { TypeOrmModule } from '@nestjs/typeorm';
import { ApiKeyEntity, TenantEntity } from '@kiln/database';
import { FairUseModule } from '../fair-use/fair-use.module.js';
import { AdminTokenCheck } from './admin-token-check.js';
import { ApiKeyGuard } from './api-key.guard.js';
import { ApiKeysService } from './api-keys.service.js';
import { KeysController } from './keys.controller.js';

@Module({
  imports: [TypeOrmModule.forFeature([ApiKeyEntity, TenantEntity]), FairUseModule],
  controllers: [KeysController],
  providers: [ApiKeysService, AdminTokenCheck, { provide: APP_GUARD, useClass: ApiKeyGuard }],
  exports: [ApiKeysService, FairUseModule],
})
export class AuthModule {}
