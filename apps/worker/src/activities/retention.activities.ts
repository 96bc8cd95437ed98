import { Injectable } from '@nestjs/common';
import { RetentionService } from '@kiln/core';
import type { RetentionActivities, RetentionRunSummary } from '@kiln/temporal';

/** The scheduled retention pass (applyRetentionWorkflow), on the orchestrator. */
@Injectable()
export class RetentionActivitiesService implements RetentionActivities {
  constructor(private readonly retention: RetentionService) {}

  applyRetentionPolicies(): Promise<RetentionRunSummary> {
    return this.retention.runAll();
  }
}
