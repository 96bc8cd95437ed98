import { Body, Controller, Delete, Get, HttpCode, Post, Put } from '@nestjs/common';
import { ApiBearerAuth, ApiNoContentResponse, ApiOkResponse, ApiTags } from '@nestjs/swagger';
import { ErrorCode, KilnError } from '@kiln/contracts';
import { RetentionService, type RetentionRules } from '@kiln/core';
import { Auth, type AuthContext, OWNERS, READERS, Roles } from '../auth/auth-context.js';
import { RetentionPolicyDto, RetentionRulesDto, RetentionRunDto, RetentionRunRequestDto } from './retention.dto.js';

const rulesOf = (dto: RetentionRulesDto): RetentionRules => ({
  keepLastVersions: dto.keepLastVersions ?? null,
  maxAgeDays: dto.maxAgeDays ?? null,
});

/**
 * The tenant's retention policy: keep each model's last N versions or those younger than D days, never what a channel
 * or an active rollout points at or a compilation is working on. The orchestrator applies it on a schedule; an owner
 * can preview it (dry run) or apply it now.
 */
@ApiTags('retention')
@ApiBearerAuth()
@Controller('v1/retention-policy')
export class RetentionPolicyController {
  constructor(private readonly retention: RetentionService) {}

  @Get()
  @Roles(...READERS)
  @ApiOkResponse({ type: RetentionPolicyDto })
  async get(@Auth() auth: AuthContext): Promise<RetentionPolicyDto> {
    const rules = await this.retention.rules(auth.tenantId);
    if (!rules)
      throw new KilnError(ErrorCode.NOT_FOUND, 'This tenant has no retention policy: it keeps every version.');
    return rules;
  }

  @Put()
  @Roles(...OWNERS)
  @ApiOkResponse({ type: RetentionPolicyDto })
  put(@Auth() auth: AuthContext, @Body() body: RetentionRulesDto): Promise<RetentionPolicyDto> {
    return this.retention.setRules(auth.tenantId, rulesOf(body));
  }

  @Delete()
  @Roles(...OWNERS)
  @HttpCode(204)
  @ApiNoContentResponse({ description: 'The policy is gone: every version is kept from now on' })
  async remove(@Auth() auth: AuthContext): Promise<void> {
    if (!(await this.retention.removeRules(auth.tenantId))) {
      throw new KilnError(ErrorCode.NOT_FOUND, 'This tenant has no retention policy.');
    }
  }

  @Post('runs')
  @Roles(...OWNERS)
  @HttpCode(200)
  @ApiOkResponse({ type: RetentionRunDto })
  async run(@Auth() auth: AuthContext, @Body() body: RetentionRunRequestDto): Promise<RetentionRunDto> {
    const preview = body.keepLastVersions != null || body.maxAgeDays != null;
    if (preview && !body.dryRun) {
      throw new KilnError(
        ErrorCode.VALIDATION_FAILED,
        'Rules in a run are a preview: send them with dryRun: true, or save them with PUT /v1/retention-policy.',
      );
    }
    return this.retention.run(auth.tenantId, {
      dryRun: body.dryRun,
      rules: preview ? rulesOf(body) : undefined,
      actor: { keyId: auth.keyId, role: auth.role },
    });
  }
}
