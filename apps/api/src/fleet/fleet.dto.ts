import { ApiProperty } from '@nestjs/swagger';
import { ModelRefDto } from '../resolver/resolver.dto.js';
import { RolloutResponseDto } from '../rollouts/rollouts.dto.js';

export class FleetServingDto {
  @ApiProperty({ enum: ['current', 'new', 'previous'], description: 'current: no rollout; else the rollout arm' })
  arm!: string;
  @ApiProperty() versionNumber!: number;
  @ApiProperty({ nullable: true, type: String }) artifactId!: string | null;
  @ApiProperty({ nullable: true, type: String, description: 'null: the portable graph' }) targetId!: string | null;
  @ApiProperty({ nullable: true, enum: ['device', 'build-host'] }) basis!: string | null;
  @ApiProperty({ nullable: true, type: Number }) speedup!: number | null;
  @ApiProperty({ type: [String], description: "The resolver's reasons (or why the portable graph)" })
  reasons!: string[];
}

export class FleetEvidenceDto {
  @ApiProperty({ nullable: true, type: String, description: 'null: runs of the portable graph the resolver chose' })
  artifactId!: string | null;
  @ApiProperty({ description: 'Target id, or "portable"' }) targetId!: string;
  @ApiProperty({ type: [Number], description: 'Versions of the model this artifact (or portable graph) belongs to' })
  versions!: number[];
  @ApiProperty() reports!: number;
  @ApiProperty() failures!: number;
  @ApiProperty({ type: 'object', additionalProperties: { type: 'integer' } }) failureCodes!: Record<string, number>;
  @ApiProperty({ description: 'Runs that failed for reasons that are not the artifact’s (network, trust store)' })
  otherErrors!: number;
  @ApiProperty({ description: 'Quarantined for this class by its failures' }) quarantined!: boolean;
  @ApiProperty({
    nullable: true,
    type: Number,
    description: 'Geometric mean on-device speedup over the portable graph',
  })
  deviceSpeedup!: number | null;
  @ApiProperty({ nullable: true, type: [Number], minItems: 2, maxItems: 2 }) deviceSpeedupCi!: [number, number] | null;
  @ApiProperty() deviceSamples!: number;
  @ApiProperty({ nullable: true, type: Number }) buildHostSpeedup!: number | null;
  @ApiProperty({ nullable: true, type: [Number], minItems: 2, maxItems: 2 }) buildHostSpeedupCi!:
    [number, number] | null;
  @ApiProperty() lastReportAt!: string;
}

export class FleetClassDto {
  @ApiProperty() deviceClass!: string;
  @ApiProperty() label!: string;
  @ApiProperty() reports!: number;
  @ApiProperty() failures!: number;
  @ApiProperty() lastReportAt!: string;
  @ApiProperty({ nullable: true, enum: ['active', 'rolled_back'], description: "This class's state in the rollout" })
  rolloutStatus!: string | null;
  @ApiProperty({ nullable: true, type: String }) rolloutReason!: string | null;
  @ApiProperty({ type: [FleetServingDto], description: 'What the resolver serves this class now (per rollout arm)' })
  serves!: FleetServingDto[];
  @ApiProperty({ type: [FleetEvidenceDto] }) evidence!: FleetEvidenceDto[];
}

export class FleetViewDto {
  @ApiProperty({ type: ModelRefDto }) model!: ModelRefDto;
  @ApiProperty() channel!: string;
  @ApiProperty() versionNumber!: number;
  @ApiProperty({ nullable: true, type: RolloutResponseDto, description: "The channel's latest rollout" })
  rollout!: RolloutResponseDto | null;
  @ApiProperty({ type: [FleetClassDto] }) classes!: FleetClassDto[];
}
