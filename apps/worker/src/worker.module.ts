import { Module } from '@nestjs/common';
import { TypeOrmModule } from '@nestjs/typeorm';
import { CoreModule } from '@kiln/core';
import { ArtifactEntity, BuildEntity, CompilationEntity, ModelVersionEntity } from '@kiln/database';
import { BuildActivitiesService } from './activities/build.activities.js';
import { OrchestratorActivitiesService } from './activities/orchestrator.activities.js';
import { HostService } from './host/host.service.js';
import { TemporalWorkersService } from './temporal-workers.service.js';

@Module({
  imports: [CoreModule, TypeOrmModule.forFeature([ArtifactEntity, BuildEntity, CompilationEntity, ModelVersionEntity])],
  providers: [HostService, OrchestratorActivitiesService, BuildActivitiesService, TemporalWorkersService],
})
export class WorkerModule {}
