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
import { ResolutionCache } from './resolution-cache.js';

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
  // One cache for both ways in: ResolverService (the documented route, the fleet view) and the fast path.
  providers: [ResolverService, { provide: ResolutionCache, useFactory: () => new ResolutionCache() }],
  exports: [ResolverService, ResolutionCache],
})
export class ResolverModule {}
