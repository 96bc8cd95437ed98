import { Module } from '@nestjs/common';
import { CollectorService } from './collector.service.js';
import { DeletionsService } from './deletions.service.js';
import { RetentionController } from './retention.controller.js';

/** Deletes (models, versions, artifacts) and the garbage collection of what they leave in S3. */
@Module({
  controllers: [RetentionController],
  providers: [DeletionsService, CollectorService],
  exports: [DeletionsService],
})
export class RetentionModule {}
