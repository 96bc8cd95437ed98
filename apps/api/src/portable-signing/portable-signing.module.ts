import { Module } from '@nestjs/common';
import { TypeOrmModule } from '@nestjs/typeorm';
import { ModelVersionEntity } from '@kiln/database';
import { PortableSigningService } from './portable-signing.service.js';

@Module({
  imports: [TypeOrmModule.forFeature([ModelVersionEntity])],
  providers: [PortableSigningService],
  exports: [PortableSigningService],
})
export class PortableSigningModule {}
