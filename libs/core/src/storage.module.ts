import { Global, Module, type OnApplicationShutdown } from '@nestjs/common';
import { KilnConfig } from '@kiln/config';
import { DataSource } from 'typeorm';
import { ObjectStorage } from '@kiln/storage';
import { BlobLedger } from './blob-ledger.js';
import { DeletionsService } from './deletions.js';
import { UploadSweeper } from './upload-sweeper.js';
import { objectStorageFor } from './object-storage-for.js';
import { RetentionService } from './retention.js';
import { WebhookEmitter } from './webhooks.js';

/**
 * S3 with the bucket-wide credentials: the API's and the orchestrator's. A build host never imports it (it reaches
 * storage only through the presigned URLs its workflow grants). The blob ledger decides when a blob may go; deletes
 * and retention policies (which remove rows and their objects) live here so the API and the orchestrator's scheduled
 * jobs share them.
 */
@Global()
@Module({
  providers: [
    {
      provide: ObjectStorage,
      inject: [KilnConfig],
      useFactory: async (config: KilnConfig) => {
        const storage = objectStorageFor(config);
        await storage.ensureBucket();
        return storage;
      },
    },
    {
      provide: BlobLedger,
      inject: [DataSource, ObjectStorage],
      useFactory: (dataSource: DataSource, storage: ObjectStorage) => new BlobLedger(dataSource, storage),
    },
    {
      provide: UploadSweeper,
      inject: [DataSource, ObjectStorage],
      useFactory: (dataSource: DataSource, storage: ObjectStorage) => new UploadSweeper(dataSource, storage),
    },
    DeletionsService,
    RetentionService,
    WebhookEmitter,
  ],
  exports: [ObjectStorage, BlobLedger, UploadSweeper, DeletionsService, RetentionService, WebhookEmitter],
})
export class StorageModule implements OnApplicationShutdown {
  constructor(private readonly storage: ObjectStorage) {}

  onApplicationShutdown(): void {
    this.storage.client.destroy();
  }
}
