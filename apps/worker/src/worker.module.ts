import { type DynamicModule, Module, type Provider } from '@nestjs/common';
import { TypeOrmModule } from '@nestjs/typeorm';
import { KilnConfig } from '@kiln/config';
import { CompilationStarter, CoreModule, kilnLoggerModule, StorageModule, TelemetryPartitions } from '@kiln/core';
import {
  ArtifactEntity,
  BuildEntity,
  ChannelEntity,
  ChannelMoveEntity,
  CompilationEntity,
  ModelEntity,
  ModelVersionEntity,
  RolloutEntity,
  RolloutEventEntity,
  RolloutStatsEntity,
} from '@kiln/database';
import { BuildActivitiesService } from './activities/build.activities.js';
import { ORCHESTRATOR_SIGNER, OrchestratorSigner } from './activities/orchestrator-signer.js';
import { OrchestratorActivitiesService } from './activities/orchestrator.activities.js';
import { WebhookActivitiesService } from './activities/webhook.activities.js';
import { RetentionActivitiesService } from './activities/retention.activities.js';
import { PortableSigningActivitiesService } from './activities/portable-signing.activities.js';
import { QueueBacklogPublisher } from './activities/queue-backlog.js';
import { PublishingActivitiesService } from './activities/publishing.activities.js';
import { RolloutActivitiesService } from './activities/rollout.activities.js';
import { ScheduledActivitiesService } from './activities/scheduled.activities.js';
import { HostService } from './host/host.service.js';
import { WorkerMetrics } from './metrics/worker-metrics.js';
import { SchedulesService } from './schedules.service.js';
import { TemporalWorkersService } from './temporal-workers.service.js';

export type WorkerRole = 'orchestrator' | 'build';

/**
 * The worker's parts by role. The orchestrator role holds the authority (S3 credentials, the signing key, every
 * table it writes); the build role holds none of it: it reaches the model and storage only through presigned URLs
 * its workflow grants, and writes only its build's progress row (docs/security.md, "Build hosts hold no
 * authority"). A process with both roles (the local default) has both sets.
 */
@Module({})
export class WorkerModule {
  static forRoles(roles: readonly WorkerRole[]): DynamicModule {
    const orchestrator = roles.includes('orchestrator');
    const build = roles.includes('build');
    const providers: Provider[] = [TemporalWorkersService, WorkerMetrics];
    if (orchestrator) {
      providers.push(
        OrchestratorActivitiesService,
        RolloutActivitiesService,
        PublishingActivitiesService,
        PortableSigningActivitiesService,
        WebhookActivitiesService,
        RetentionActivitiesService,
        // Periodic jobs (GC, upload sweep, reconcile, telemetry partitions): DB + S3 work, so orchestrator only; build hosts never get these activities.
        ScheduledActivitiesService,
        SchedulesService,
        CompilationStarter,
        TelemetryPartitions,
        QueueBacklogPublisher,
        { provide: ORCHESTRATOR_SIGNER, inject: [KilnConfig], useFactory: OrchestratorSigner.load },
      );
    }
    if (build) providers.push(HostService, BuildActivitiesService);
    return {
      module: WorkerModule,
      imports: [
        CoreModule,
        kilnLoggerModule('kiln-worker'),
        ...(orchestrator ? [StorageModule] : []),
        TypeOrmModule.forFeature(
          orchestrator
            ? [
                ArtifactEntity,
                BuildEntity,
                ChannelEntity,
                ChannelMoveEntity,
                CompilationEntity,
                ModelEntity,
                ModelVersionEntity,
                RolloutEntity,
                RolloutEventEntity,
                RolloutStatsEntity,
              ]
            : [BuildEntity],
        ),
      ],
      providers,
    };
  }
}
