import { Module } from '@nestjs/common';
import { TypeOrmModule } from '@nestjs/typeorm';
import {
  ChannelEntity,
  ModelVersionEntity,
  RolloutEntity,
  RolloutEventEntity,
  RolloutStatsEntity,
} from '@kiln/database';
import { ModelsModule } from '../models/models.module.js';
import { RolloutsController } from './rollouts.controller.js';
import { RolloutsService } from './rollouts.service.js';

@Module({
  imports: [
    TypeOrmModule.forFeature([
      ChannelEntity,
      ModelVersionEntity,
      RolloutEntity,
      RolloutEventEntity,
      RolloutStatsEntity,
    ]),
    ModelsModule,
  ],
  controllers: [RolloutsController],
  providers: [RolloutsService],
  exports: [RolloutsService],
})
export class RolloutsModule {}
