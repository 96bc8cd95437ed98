import { Module } from '@nestjs/common';
import { CoreModule, kilnLoggerModule, StorageModule } from '@kiln/core';
import { ArtifactsModule } from './artifacts/artifacts.module.js';
import { AuditModule } from './audit/audit.module.js';
import { AuthModule } from './auth/auth.module.js';
import { ChannelsModule } from './channels/channels.module.js';
import { CompilationsModule } from './compilations/compilations.module.js';
import { FleetModule } from './fleet/fleet.module.js';
import { MetricsModule } from './metrics/api-metrics.js';
import { HealthController } from './health/health.controller.js';
import { ModelsModule } from './models/models.module.js';
import { ResolverModule } from './resolver/resolver.module.js';
import { RetentionModule } from './retention/retention.module.js';
import { RolloutsModule } from './rollouts/rollouts.module.js';
import { TargetsController } from './targets/targets.controller.js';
import { TelemetryModule } from './telemetry/telemetry.module.js';
import { TenantsModule } from './tenants/tenants.module.js';
import { UploadsModule } from './uploads/uploads.module.js';
import { VersionsModule } from './versions/versions.module.js';
import { WebhooksModule } from './webhooks/webhooks.module.js';

@Module({
  imports: [
    CoreModule,
    kilnLoggerModule('kiln-api'),
    MetricsModule,
    StorageModule,
    AuthModule,
    TenantsModule,
    ModelsModule,
    VersionsModule,
    CompilationsModule,
    ArtifactsModule,
    ChannelsModule,
    ResolverModule,
    UploadsModule,
    TelemetryModule,
    RolloutsModule,
    FleetModule,
    RetentionModule,
    AuditModule,
    WebhooksModule,
  ],
  controllers: [HealthController, TargetsController],
})
export class AppModule {}
