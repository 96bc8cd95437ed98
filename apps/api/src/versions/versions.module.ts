import { Module } from '@nestjs/common';
import { TypeOrmModule } from '@nestjs/typeorm';
import { ModelEntity, ModelVersionEntity } from '@kiln/database';
import { FairUseModule } from '../fair-use/fair-use.module.js';
import { ModelsModule } from '../models/models.module.js';
import { PortableSigningModule } from '../portable-signing/portable-signing.module.js';
import { VersionsController } from './versions.controller.js';
import { VersionsService } from './versions.service.js';

@Module({
  imports: [
    TypeOrmModule.forFeature([ModelEntity, ModelVersionEntity]),
    ModelsModule,
    FairUseModule,
    PortableSigningModule,
  ],
  controllers: [VersionsController],
  providers: [VersionsService],
  exports: [VersionsService],
})
export class VersionsModule {}
