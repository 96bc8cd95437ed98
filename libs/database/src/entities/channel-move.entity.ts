import {
  Column,
  CreateDateColumn,
  Entity,
  Index,
  JoinColumn,
  ManyToOne,
  PrimaryGeneratedColumn,
  type Relation,
} from 'typeorm';
import { ChannelEntity } from './channel.entity.js';

/** The history of a channel: every move, who made it and from which version to which. */
@Entity({ name: 'channel_moves' })
@Index('ix_channel_moves_channel_moved', ['channelId', 'movedAt'])
export class ChannelMoveEntity {
  @PrimaryGeneratedColumn('uuid', { primaryKeyConstraintName: 'pk_channel_moves' }) id!: string;
  @Column({ name: 'tenant_id', type: 'uuid' }) tenantId!: string;
  @Column({ name: 'channel_id', type: 'uuid' }) channelId!: string;
  @ManyToOne(() => ChannelEntity, { onDelete: 'CASCADE' })
  @JoinColumn({ name: 'channel_id', foreignKeyConstraintName: 'fk_channel_moves_channel' })
  channel?: Relation<ChannelEntity>;
  @Column({ name: 'from_version_id', type: 'uuid', nullable: true }) fromVersionId!: string | null;
  @Column({ name: 'to_version_id', type: 'uuid' }) toVersionId!: string;
  /** The API key that moved it. */
  @Column({ name: 'moved_by_key_id', type: 'uuid' }) movedByKeyId!: string;
  @CreateDateColumn({ name: 'moved_at', type: 'timestamptz' }) movedAt!: Date;
}
