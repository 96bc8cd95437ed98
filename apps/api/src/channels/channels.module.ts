import { Module } from '@nestjs/common';
import { TypeOrmModule } from '@nestjs/typeorm';
import { ChannelEntity, ChannelMoveEntity, ModelVersionEntity, RolloutEntity } from '@kiln/database';
import { ModelsModule } from '../models/models.module.js';
import { ChannelsController } from './channels.controller.js';
import { ChannelsService } from './channels.service.js';

@Module({
  imports: [
    TypeOrmModule.forFeature([ChannelEntity, ChannelMoveEntity, ModelVersionEntity, RolloutEntity]),
    ModelsModule,
  ],
  controllers: [ChannelsController],
  providers: [ChannelsService],
})
export class ChannelsModule {}
