import { Controller, Get, HttpStatus, Res } from '@nestjs/common';
import { ApiOkResponse, ApiProperty, ApiServiceUnavailableResponse, ApiTags } from '@nestjs/swagger';
import { InjectDataSource } from '@nestjs/typeorm';
import { Client } from '@temporalio/client';
import type { Response } from 'express';
import { DataSource } from 'typeorm';
import { ObjectStorage } from '@kiln/storage';
import { Public } from '../auth/auth-context.js';

export class HealthResponseDto {
  @ApiProperty({ enum: ['ok', 'degraded'] }) status!: 'ok' | 'degraded';
  @ApiProperty({ description: '"up", or "down: <why>"' }) postgres!: string;
  @ApiProperty({ description: '"up", or "down: <why>"' }) s3!: string;
  @ApiProperty({ description: '"up", or "down: <why>"' }) temporal!: string;
}

/** Readiness: 200 when PostgreSQL, S3 and Temporal all answer, else 503 naming what is down. */
@ApiTags('health')
@Public()
@Controller('v1/health')
export class HealthController {
  constructor(
    @InjectDataSource() private readonly db: DataSource,
    private readonly storage: ObjectStorage,
    private readonly temporal: Client,
  ) {}

  @Get()
  @ApiOkResponse({ type: HealthResponseDto })
  @ApiServiceUnavailableResponse({ type: HealthResponseDto, description: 'A dependency is down (named in the body)' })
  async check(@Res({ passthrough: true }) res: Response): Promise<HealthResponseDto> {
    const probe = async (fn: () => Promise<unknown>): Promise<string> => {
      try {
        await fn();
        return 'up';
      } catch (err) {
        return `down: ${err instanceof Error ? err.message : String(err)}`;
      }
    };
    const [postgres, s3, temporal] = await Promise.all([
      probe(() => this.db.query('SELECT 1')),
      probe(() => this.storage.ensureBucket()),
      probe(() => this.temporal.workflowService.getSystemInfo({})),
    ]);
    const result = { postgres, s3, temporal };
    const ok = Object.values(result).every((v) => v === 'up');
    res.status(ok ? HttpStatus.OK : HttpStatus.SERVICE_UNAVAILABLE);
    return { status: ok ? 'ok' : 'degraded', ...result };
  }
}
