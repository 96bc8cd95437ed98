import { Module } from '@nestjs/common';
import { TypeOrmModule } from '@nestjs/typeorm';
import { CoreModule } from '@kiln/core';
import {
  ArtifactEntity,
  BuildEntity,
  ChannelEntity,
  ChannelMoveEntity,
  CompilationEntity,
  ModelVersionEntity,
  RolloutEntity,
  RolloutEventEntity,
  RolloutStatsEntity,
} from '@kiln/database';
import { BuildActivitiesService } from './activities/build.activities.js';
import { OrchestratorActivitiesService } from './activities/orchestrator.activities.js';
import { RolloutActivitiesService } from './activities/rollout.activities.js';
import { HostService } from './host/host.service.js';
import { TemporalWorkersService } from './temporal-workers.service.js';

@Module({
  imports: [
    CoreModule,
    TypeOrmModule.forFeature([
      ArtifactEntity,
      BuildEntity,
      ChannelEntity,
      ChannelMoveEntity,
      CompilationEntity,
      ModelVersionEntity,
      RolloutEntity,
      RolloutEventEntity,
      RolloutStatsEntity,
    ]),
  ],
  providers: [
    HostService,
    OrchestratorActivitiesService,
    RolloutActivitiesService,
    BuildActivitiesService,
    TemporalWorkersService,
  ],
})
export class WorkerModule {}
