import { Module } from '@nestjs/common';
import { TypeOrmModule } from '@nestjs/typeorm';
import { UploadEntity } from '@kiln/database';
import { FairUseModule } from '../fair-use/fair-use.module.js';
import { ModelsModule } from '../models/models.module.js';
import { VersionsModule } from '../versions/versions.module.js';
import { UploadsController } from './uploads.controller.js';
import { UploadsService } from './uploads.service.js';

@Module({
  imports: [TypeOrmModule.forFeature([UploadEntity]), ModelsModule, VersionsModule, FairUseModule],
  controllers: [UploadsController],
  providers: [UploadsService],
})
export class UploadsModule {}
