import { Controller, Get } from '@nestjs/common';
import { ApiBearerAuth, ApiOkResponse, ApiProperty, ApiTags } from '@nestjs/swagger';
import { Client } from '@temporalio/client';
import { TARGETS, taskQueueFor, type TargetRequirement } from '@kiln/targets';
import { queuesWithPollers } from '@kiln/temporal';
import { READERS, Roles } from '../auth/auth-context.js';

export class TargetRequirementDto {
  @ApiProperty({ enum: ['linux'] }) os!: 'linux';
  @ApiProperty({ enum: ['x86_64', 'aarch64'] }) arch!: 'x86_64' | 'aarch64';
  @ApiProperty({ nullable: true, type: 'integer', enum: [2, 3, 4], description: 'Minimum x86-64 level of the CPU' })
  x86Level!: 2 | 3 | 4 | null;
  @ApiProperty({ nullable: true, type: String, description: 'Exact compute capability of the GPU' })
  computeCapability!: string | null;
}

export class TargetResponseDto {
  @ApiProperty() id!: string;
  @ApiProperty() title!: string;
  @ApiProperty() description!: string;
  @ApiProperty({ type: TargetRequirementDto }) requires!: TargetRequirement;
  @ApiProperty() recipeVersion!: number;
  @ApiProperty({
    required: false,
    enum: ['aarch64'],
    description:
      'Set for a cross target: built on x86 workers for this machine type and verified under emulation, so its ' +
      'artifacts carry no speed figure (the resolver serves them by its unmeasuredArtifacts policy)',
  })
  crossBuiltFor?: 'aarch64';
  @ApiProperty({ description: 'A build worker for this target polled its queue recently' }) workerOnline!: boolean;
}

@ApiTags('targets')
@ApiBearerAuth()
@Controller('v1/targets')
export class TargetsController {
  constructor(private readonly temporal: Client) {}

  /** The target catalog, and which targets a build worker is serving right now. */
  @Get()
  @Roles(...READERS)
  @ApiOkResponse({ type: [TargetResponseDto] })
  async list(): Promise<TargetResponseDto[]> {
    const online = await queuesWithPollers(
      this.temporal,
      TARGETS.map((t) => taskQueueFor(t.id)),
    ).catch(() => new Set<string>());
    return TARGETS.map((t) => ({
      id: t.id,
      title: t.title,
      description: t.description,
      requires: t.requires,
      recipeVersion: t.recipe.recipeVersion,
      workerOnline: online.has(taskQueueFor(t.id)),
      ...(t.recipe.cross ? { crossBuiltFor: t.recipe.cross.arch } : {}),
    }));
  }
}
