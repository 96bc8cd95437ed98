import { Module } from '@nestjs/common';
import { TypeOrmModule } from '@nestjs/typeorm';
import { CompilationStarter } from '@kiln/core';
import { ApiKeyEntity, ArtifactEntity, BuildEntity, CompilationEntity } from '@kiln/database';
import { AuthModule } from '../auth/auth.module.js';
import { FairUseModule } from '../fair-use/fair-use.module.js';
import { VersionsModule } from '../versions/versions.module.js';
import { CompilationEventsController } from './compilation-events.controller.js';
import { CompilationEventsService } from './compilation-events.service.js';
import { CompilationsController } from './compilations.controller.js';
import { CompilationsService } from './compilations.service.js';

@Module({
  imports: [
    TypeOrmModule.forFeature([CompilationEntity, BuildEntity, ArtifactEntity, ApiKeyEntity]),
    VersionsModule,
    AuthModule,
    FairUseModule,
  ],
  controllers: [CompilationsController, CompilationEventsController],
  providers: [CompilationsService, CompilationEventsService, CompilationStarter],
})
export class CompilationsModule {}
