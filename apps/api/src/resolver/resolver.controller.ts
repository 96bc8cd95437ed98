import { Body, Controller, Get, HttpCode, Post } from '@nestjs/common';
import { ApiBearerAuth, ApiOkResponse, ApiTags } from '@nestjs/swagger';
import { Auth, type AuthContext, EVERY_ROLE, Public, Roles } from '../auth/auth-context.js';
import { NotAudited } from '../audit/not-audited.js';
import { SigningPublicKey } from '../portable-signing/signing-key.js';
import { ResolutionResponseDto, ResolveRequestDto, SigningKeyDto } from './resolver.dto.js';
import { ResolverService } from './resolver.service.js';

@ApiTags('resolver')
@Controller('v1')
export class ResolverController {
  constructor(
    private readonly resolver: ResolverService,
    private readonly signingKey: SigningPublicKey,
  ) {}

  /** The fastest artifact this device can safely run, the portable fallback, and why. */
  @Post('resolve')
  @HttpCode(200)
  @ApiBearerAuth()
  @ApiOkResponse({ type: ResolutionResponseDto })
  @Roles(...EVERY_ROLE)
  @NotAudited()
  resolve(@Auth() auth: AuthContext, @Body() dto: ResolveRequestDto): Promise<ResolutionResponseDto> {
    return this.resolver.resolve(auth.tenantId, dto, auth.modelScope);
  }

  /** The public keys artifact signatures verify against (pin them on devices). */
  @Get('signing-keys')
  @ApiOkResponse({ type: [SigningKeyDto] })
  @Public()
  signingKeys(): SigningKeyDto[] {
    return [this.signingKey.key];
  }
}
