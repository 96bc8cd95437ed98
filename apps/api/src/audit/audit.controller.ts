import { Controller, Get, Query } from '@nestjs/common';
import { ApiBearerAuth, ApiOkResponse, ApiTags } from '@nestjs/swagger';
import { Auth, type AuthContext, OWNERS, Roles } from '../auth/auth-context.js';
import { AuditEventPageDto, ListAuditEventsQueryDto } from './audit.dto.js';
import { AuditService } from './audit.service.js';

/** The tenant's audit log, for its owners: every mutation, newest first, filterable and paged. */
@ApiTags('audit')
@ApiBearerAuth()
@Controller('v1/audit-events')
export class AuditController {
  constructor(private readonly audit: AuditService) {}

  @Get()
  @Roles(...OWNERS)
  @ApiOkResponse({ type: AuditEventPageDto })
  list(@Auth() auth: AuthContext, @Query() query: ListAuditEventsQueryDto): Promise<AuditEventPageDto> {
    return this.audit.list(auth.tenantId, query);
  }
}
