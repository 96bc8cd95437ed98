import { Injectable } from '@nestjs/common';
import { BlobLedger, type CollectionResult } from '@kiln/core';

/**
 * Collects one tenant's deleted objects and unreferenced blobs right after a delete. The periodic collection of
 * everything runs on the orchestrator, from the `kiln-gc-blobs` Temporal Schedule (every KILN_GC_INTERVAL_S), not
 * in API replicas.
 */
@Injectable()
export class CollectorService {
  constructor(private readonly ledger: BlobLedger) {}

  collect(tenantId?: string): Promise<CollectionResult> {
    return this.ledger.collect(tenantId);
  }
}
