import { Module } from '@nestjs/common';
import { TypeOrmModule } from '@nestjs/typeorm';
import {
  ArtifactEntity,
  ChannelEntity,
  FleetEvidenceEntity,
  ModelEntity,
  ModelVersionEntity,
  RolloutEntity,
} from '@kiln/database';
import { PortableSigningModule } from '../portable-signing/portable-signing.module.js';
import { ResolverController } from './resolver.controller.js';
import { ResolverService } from './resolver.service.js';

@Module({
  imports: [
    TypeOrmModule.forFeature([
      ArtifactEntity,
      ChannelEntity,
      FleetEvidenceEntity,
      ModelEntity,
      ModelVersionEntity,
      RolloutEntity,
    ]),
    PortableSigningModule,
  ],
  controllers: [ResolverController],
  providers: [ResolverService],
  exports: [ResolverService],
})
export class ResolverModule {}
