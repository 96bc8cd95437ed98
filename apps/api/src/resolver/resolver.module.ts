import { Module } from '@nestjs/common';
import { TypeOrmModule } from '@nestjs/typeorm';
import { ArtifactEntity, ChannelEntity, ModelEntity, ModelVersionEntity } from '@kiln/database';
import { ResolverController } from './resolver.controller.js';
import { ResolverService } from './resolver.service.js';

@Module({
  imports: [TypeOrmModule.forFeature([ArtifactEntity, ChannelEntity, ModelEntity, ModelVersionEntity])],
  controllers: [ResolverController],
  providers: [ResolverService],
})
export class ResolverModule {}
