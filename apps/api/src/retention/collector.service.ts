import { Injectable, Logger, type OnApplicationBootstrap, type OnModuleDestroy } from '@nestjs/common';
import { KilnConfig } from '@kiln/config';
import { BlobLedger, type CollectionResult } from '@kiln/core';

/**
 * Runs the blob ledger's collection every KILN_GC_INTERVAL_S on each API replica (collections lock what they remove
 * and skip what another holds, so replicas never step on each other), and for one tenant right after a delete.
 */
@Injectable()
export class CollectorService implements OnApplicationBootstrap, OnModuleDestroy {
  private readonly logger = new Logger(CollectorService.name);
  private timer?: NodeJS.Timeout;

  constructor(
    private readonly ledger: BlobLedger,
    private readonly config: KilnConfig,
  ) {}

  collect(tenantId?: string): Promise<CollectionResult> {
    return this.ledger.collect(tenantId);
  }

  onApplicationBootstrap(): void {
    this.timer = setInterval(() => {
      this.collect()
        .then((r) => {
          if (r.objectsDeleted + r.blobsDeleted > 0) {
            this.logger.log(`Collected ${r.objectsDeleted} object(s) and ${r.blobsDeleted} blob(s).`);
          }
        })
        .catch((err: unknown) => this.logger.warn(`Collection failed: ${String(err)}`));
    }, this.config.KILN_GC_INTERVAL_S * 1000);
    this.timer.unref();
  }

  onModuleDestroy(): void {
    clearInterval(this.timer);
  }
}
