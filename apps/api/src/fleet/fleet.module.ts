import { Module } from '@nestjs/common';
import { TypeOrmModule } from '@nestjs/typeorm';
import { ArtifactEntity, ChannelEntity, FleetEvidenceEntity, ModelVersionEntity } from '@kiln/database';
import { ModelsModule } from '../models/models.module.js';
import { ResolverModule } from '../resolver/resolver.module.js';
import { RolloutsModule } from '../rollouts/rollouts.module.js';
import { FleetController } from './fleet.controller.js';
import { FleetService } from './fleet.service.js';

@Module({
  imports: [
    TypeOrmModule.forFeature([ArtifactEntity, ChannelEntity, FleetEvidenceEntity, ModelVersionEntity]),
    ModelsModule,
    ResolverModule,
    RolloutsModule,
  ],
  controllers: [FleetController],
  providers: [FleetService],
})
export class FleetModule {}
