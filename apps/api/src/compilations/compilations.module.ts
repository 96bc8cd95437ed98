import { Module } from '@nestjs/common';
import { TypeOrmModule } from '@nestjs/typeorm';
import { ArtifactEntity, BuildEntity, CompilationEntity } from '@kiln/database';
import { VersionsModule } from '../versions/versions.module.js';
import { CompilationsController } from './compilations.controller.js';
import { CompilationsService } from './compilations.service.js';

@Module({
  imports: [TypeOrmModule.forFeature([CompilationEntity, BuildEntity, ArtifactEntity]), VersionsModule],
  controllers: [CompilationsController],
  providers: [CompilationsService],
})
export class CompilationsModule {}
