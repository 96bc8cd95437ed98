import { Module } from '@nestjs/common';
import { TelemetryController } from './telemetry.controller.js';
import { TelemetryPartitions } from '@kiln/core';
import { TelemetryService } from './telemetry.service.js';

@Module({
  controllers: [TelemetryController],
  providers: [TelemetryService, TelemetryPartitions],
  exports: [TelemetryService],
})
export class TelemetryModule {}
