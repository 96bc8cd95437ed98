import { Module } from '@nestjs/common';
import { CollectorService } from './collector.service.js';
import { RetentionPolicyController } from './retention-policy.controller.js';
import { RetentionController } from './retention.controller.js';

/**
 * Deletes (models, versions, artifacts), retention policies, and the garbage collection of what they leave in S3.
 * DeletionsService and RetentionService are @kiln/core's (StorageModule), shared with the orchestrator's scheduled
 * retention job.
 */
@Module({
  controllers: [RetentionController, RetentionPolicyController],
  providers: [CollectorService],
})
export class RetentionModule {}
