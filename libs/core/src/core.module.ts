import { Global, Module, type OnApplicationShutdown, Inject } from '@nestjs/common';
import { ConfigModule } from '@nestjs/config';
import { TypeOrmModule } from '@nestjs/typeorm';
import { Connection, Client } from '@temporalio/client';
import { KilnConfig, validateKilnConfig } from '@kiln/config';
import { kilnDataSourceOptions } from '@kiln/database';
import { ArtifactSigner } from '@kiln/signing';
import { ObjectStorage } from '@kiln/storage';
import { objectStorageFor } from './object-storage-for.js';

export const TEMPORAL_CONNECTION = Symbol('TEMPORAL_CONNECTION');

/**
 * What both apps need from the outside world: validated config, PostgreSQL (TypeORM), S3 and a Temporal
 * client. Global, so feature modules inject `KilnConfig`, repositories, `ObjectStorage` and `Client`.
 */
@Global()
@Module({
  imports: [
    ConfigModule.forRoot({ isGlobal: true, validate: validateKilnConfig, envFilePath: ['.env'] }),
    TypeOrmModule.forRootAsync({
      inject: [KilnConfig],
      useFactory: (config: KilnConfig) =>
        kilnDataSourceOptions(config.DATABASE_URL, { migrationsRun: config.KILN_DB_MIGRATE_ON_START }),
    }),
  ],
  providers: [
    { provide: KilnConfig, useFactory: () => validateKilnConfig(process.env) },
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
      provide: ArtifactSigner,
      inject: [KilnConfig],
      useFactory: (config: KilnConfig) =>
        ArtifactSigner.fromFile(config.resolvePath(config.KILN_SIGNING_KEY_FILE), config.KILN_SIGNING_KEY_CREATE),
    },
    {
      provide: TEMPORAL_CONNECTION,
      inject: [KilnConfig],
      useFactory: (config: KilnConfig) => Connection.connect({ address: config.TEMPORAL_ADDRESS }),
    },
    {
      provide: Client,
      inject: [TEMPORAL_CONNECTION, KilnConfig],
      useFactory: (connection: Connection, config: KilnConfig) =>
        new Client({ connection, namespace: config.TEMPORAL_NAMESPACE }),
    },
  ],
  exports: [KilnConfig, ArtifactSigner, ObjectStorage, TEMPORAL_CONNECTION, Client, TypeOrmModule],
})
export class CoreModule implements OnApplicationShutdown {
  constructor(
    @Inject(TEMPORAL_CONNECTION) private readonly connection: Connection,
    private readonly storage: ObjectStorage,
  ) {}

  async onApplicationShutdown(): Promise<void> {
    await this.connection.close();
    this.storage.client.destroy();
  }
}
