import { ApiProperty } from '@nestjs/swagger';
import type { ArtifactManifest } from '@kiln/contracts';

export class ArtifactResponseDto {
  @ApiProperty() id!: string;
  @ApiProperty() targetId!: string;
  @ApiProperty() cacheKey!: string;
  @ApiProperty() modelContentHash!: string;
  @ApiProperty() sizeBytes!: number;
  @ApiProperty() createdAt!: string;
  @ApiProperty({
    description: 'What a device needs to run it (x86 level, torch build, glibc, ...)',
    type: 'object',
    additionalProperties: true,
  })
  requires!: ArtifactManifest['requires'];
  @ApiProperty({ type: 'object', additionalProperties: true }) verification!: ArtifactManifest['verification'];
  @ApiProperty({ type: 'object', additionalProperties: true }) timing!: ArtifactManifest['timing'];
  @ApiProperty({ type: 'object', additionalProperties: true }) isaCheck!: ArtifactManifest['isaCheck'];
  @ApiProperty({ type: 'object', additionalProperties: true }) toolchain!: ArtifactManifest['toolchain'];
  @ApiProperty({ type: 'array', items: { type: 'object', additionalProperties: true } })
  parts!: ArtifactManifest['parts'];
  @ApiProperty({
    description:
      'Whether the build host built the parts twice and got the same bytes (the compilation asked `reproduce`): ' +
      '{checked: true, builds: 2, identical: true}, or {checked: false}; null for artifacts built before it was recorded',
    type: 'object',
    additionalProperties: true,
    nullable: true,
  })
  reproduction!: ArtifactManifest['reproduction'] | null;
  @ApiProperty({
    description:
      "A weights-only update: whether the code part is an earlier version's (reused, codeFrom) or was compiled anew " +
      '(fallback says why); null when the build had no code donor',
    type: 'object',
    additionalProperties: true,
    nullable: true,
  })
  reuse!: ArtifactManifest['reuse'] | null;
}

export class ArtifactPartDownloadDto {
  @ApiProperty({ enum: ['code', 'weights'] }) role!: string;
  @ApiProperty() sha256!: string;
  @ApiProperty() size!: number;
  @ApiProperty({ required: false, description: 'Where a weights part goes inside the code package' }) entry?: string;
  @ApiProperty() url!: string;
}

export class ArtifactDownloadResponseDto {
  @ApiProperty() artifactId!: string;
  @ApiProperty() targetId!: string;
  @ApiProperty() expiresAt!: string;
  @ApiProperty() manifestUrl!: string;
  @ApiProperty({ type: [ArtifactPartDownloadDto] }) parts!: ArtifactPartDownloadDto[];
  @ApiProperty({ description: 'How to turn the parts into one loadable AOTInductor package' }) assembly!: string;
}
