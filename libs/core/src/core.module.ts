import { Global, Module, type OnApplicationShutdown, Inject } from '@nestjs/common';
import { ConfigModule } from '@nestjs/config';
import { TypeOrmModule } from '@nestjs/typeorm';
import { Connection, Client } from '@temporalio/client';
import { OpenTelemetryWorkflowClientInterceptor } from '@temporalio/interceptors-opentelemetry';
import { KilnConfig, validateKilnConfig } from '@kiln/config';
import { kilnDataSourceOptions } from '@kiln/database';
import { activeTracing, stopTracing } from '@kiln/tracing';
import { temporalConnectionOptions } from './temporal-connection.js';

export const TEMPORAL_CONNECTION = Symbol('TEMPORAL_CONNECTION');

/**
 * What every process needs from the outside world: validated config, PostgreSQL (TypeORM) and a Temporal client.
 * Global, so feature modules inject `KilnConfig`, repositories and `Client`. S3 is StorageModule's: a build host
 * holds no S3 credentials and does not import it.
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
      provide: TEMPORAL_CONNECTION,
      inject: [KilnConfig],
      useFactory: (config: KilnConfig) => Connection.connect(temporalConnectionOptions(config)),
    },
    {
      provide: Client,
      inject: [TEMPORAL_CONNECTION, KilnConfig],
      useFactory: (connection: Connection, config: KilnConfig) =>
        new Client({
          connection,
          namespace: config.TEMPORAL_NAMESPACE,
          // With tracing on, a workflow start (update, signal, query) is a span of the caller's trace and carries
          // its context to the workflow in the headers; the worker's interceptors continue the trace from there.
          ...(activeTracing() ? { interceptors: { workflow: [new OpenTelemetryWorkflowClientInterceptor()] } } : {}),
        }),
    },
  ],
  exports: [KilnConfig, TEMPORAL_CONNECTION, Client, TypeOrmModule],
})
export class CoreModule implements OnApplicationShutdown {
  constructor(@Inject(TEMPORAL_CONNECTION) private readonly connection: Connection) {}

  // The last hook to run (a global module's): every span of the process has ended, so the rest are sent now.
  async onApplicationShutdown(): Promise<void> {
    await this.connection.close();
    await stopTracing();
  }
}
