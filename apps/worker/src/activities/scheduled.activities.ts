import { Injectable, Logger } from '@nestjs/common';
import { KilnConfig } from '@kiln/config';
import { BlobLedger, CompilationStarter, TelemetryPartitions, UploadSweeper } from '@kiln/core';
import type { ScheduledActivities } from '@kiln/temporal';
import { QueueBacklogPublisher } from './queue-backlog.js';

/** The periodic jobs' work, run by the schedules' workflows on the orchestrator (which holds the DB and S3). */
@Injectable()
export class ScheduledActivitiesService implements ScheduledActivities {
  private readonly logger = new Logger(ScheduledActivitiesService.name);

  constructor(
    private readonly ledger: BlobLedger,
    private readonly uploads: UploadSweeper,
    private readonly compilations: CompilationStarter,
    private readonly telemetry: TelemetryPartitions,
    private readonly config: KilnConfig,
    private readonly backlog: QueueBacklogPublisher,
  ) {}

  publishQueueBacklog(): Promise<Record<string, number>> {
    return this.backlog.publish();
  }

  reconcileCompilations(): Promise<number> {
    return this.compilations.reconcilePending();
  }

  dropExpiredTelemetry(): Promise<string[]> {
    return this.telemetry.dropExpired(this.config.KILN_TELEMETRY_RETENTION_DAYS);
  }

  sweepUploads(): Promise<number> {
    return this.uploads.sweepExpired();
  }

  async collectGarbage(): Promise<{ objectsDeleted: number; blobsDeleted: number }> {
    const r = await this.ledger.collect();
    if (r.objectsDeleted + r.blobsDeleted > 0) {
      this.logger.log(`Collected ${r.objectsDeleted} object(s) and ${r.blobsDeleted} blob(s).`);
    }
    return r;
  }
}
