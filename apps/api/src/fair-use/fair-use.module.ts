import { Module } from '@nestjs/common';
import { QuotasService } from './quotas.service.js';
import { RateLimitService } from './rate-limit.service.js';

/** Fair use between tenants: per-key API rate limits and per-tenant quotas (docs/security.md, "Fair use"). */
@Module({
  providers: [QuotasService, RateLimitService],
  exports: [QuotasService, RateLimitService],
})
export class FairUseModule {}
