import { Controller, Get, HttpCode, Post, Req, Res } from '@nestjs/common';
import { ApiBearerAuth, ApiCreatedResponse, ApiOkResponse, ApiProduces, ApiQuery, ApiTags } from '@nestjs/swagger';
import type { Request, Response } from 'express';
import { Auth, type AuthContext, Public, READERS, Roles } from '../auth/auth-context.js';
import { NotAudited } from '../audit/not-audited.js';
import { UuidParam } from '../common/uuid-param.js';
import { CompilationEventsService } from './compilation-events.service.js';
import { CompilationEventsTokenResponseDto } from './compilations.dto.js';

@ApiTags('compilations')
@Controller('v1/compilations/:compilationId')
export class CompilationEventsController {
  constructor(private readonly events: CompilationEventsService) {}

  /** A short-lived token for the event stream, for clients that cannot send headers (EventSource). */
  @Post('events-token')
  @Roles(...READERS)
  @NotAudited()
  @HttpCode(201)
  @ApiBearerAuth()
  @ApiCreatedResponse({ type: CompilationEventsTokenResponseDto })
  token(@Auth() auth: AuthContext, @UuidParam('compilationId') id: string): Promise<CompilationEventsTokenResponseDto> {
    return this.events.issueToken(auth, id);
  }

  /**
   * Server-sent events: `compilation` (the compilation JSON) whenever a build's status or phase changes,
   * then `end` when the compilation is over. Authenticate with the API key in the headers, or with
   * `?token=` from POST events-token (the key itself never goes in a URL).
   */
  @Get('events')
  @Public() // authenticated below: by header like every route, or by an events token
  @ApiBearerAuth()
  @ApiProduces('text/event-stream')
  @ApiOkResponse({
    description: 'Server-sent events: `compilation` (the state), `build` (a change), `end`',
    content: {
      'text/event-stream': {
        schema: {
          type: 'object',
          required: ['event', 'data'],
          properties: {
            event: { type: 'string', enum: ['compilation', 'build', 'end'] },
            data: { type: 'string', description: 'JSON: the compilation, one build, or {id, status}' },
            id: { type: 'string' },
            retry: { type: 'integer' },
          },
        },
      },
    },
  })
  @ApiQuery({ name: 'token', required: false, description: 'From POST /v1/compilations/:id/events-token' })
  async stream(@UuidParam('compilationId') id: string, @Req() req: Request, @Res() res: Response): Promise<void> {
    const tenantId = await this.events.authenticate(req, id);
    await this.events.stream(tenantId, id, req, res);
  }
}
