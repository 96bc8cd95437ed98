import type { MigrationInterface, QueryRunner } from 'typeorm';

/**
 * Artifact signatures (ed25519 over the manifest bytes) and model channels with their move history.
 * Artifacts built before this migration get an empty signature: the resolver never serves those.
 */
export class SignaturesAndChannels1764158400000 implements MigrationInterface {
  name = 'SignaturesAndChannels1764158400000';

  public async up(queryRunner: QueryRunner): Promise<void> {
    await queryRunner.query(
      `CREATE TABLE "channels" ("id" uuid NOT NULL DEFAULT gen_random_uuid(), "tenant_id" uuid NOT NULL, "model_id" uuid NOT NULL, "name" text NOT NULL, "version_id" uuid NOT NULL, "updated_at" TIMESTAMP WITH TIME ZONE NOT NULL DEFAULT now(), CONSTRAINT "pk_channels" PRIMARY KEY ("id"))`,
    );
    await queryRunner.query(`CREATE UNIQUE INDEX "ux_channels_model_name" ON "channels"  ("model_id", "name")`);
    await queryRunner.query(
      `CREATE TABLE "channel_moves" ("id" uuid NOT NULL DEFAULT gen_random_uuid(), "tenant_id" uuid NOT NULL, "channel_id" uuid NOT NULL, "from_version_id" uuid, "to_version_id" uuid NOT NULL, "moved_by_key_id" uuid NOT NULL, "moved_at" TIMESTAMP WITH TIME ZONE NOT NULL DEFAULT now(), CONSTRAINT "pk_channel_moves" PRIMARY KEY ("id"))`,
    );
    await queryRunner.query(
      `CREATE INDEX "ix_channel_moves_channel_moved" ON "channel_moves"  ("channel_id", "moved_at")`,
    );
    await queryRunner.query(`ALTER TABLE "artifacts" ADD "manifest_sha256" text NOT NULL DEFAULT ''`);
    await queryRunner.query(`ALTER TABLE "artifacts" ALTER COLUMN "manifest_sha256" DROP DEFAULT`);
    await queryRunner.query(`ALTER TABLE "artifacts" ADD "signature" text NOT NULL DEFAULT ''`);
    await queryRunner.query(`ALTER TABLE "artifacts" ALTER COLUMN "signature" DROP DEFAULT`);
    await queryRunner.query(`ALTER TABLE "artifacts" ADD "signing_key_id" text NOT NULL DEFAULT ''`);
    await queryRunner.query(`ALTER TABLE "artifacts" ALTER COLUMN "signing_key_id" DROP DEFAULT`);
    await queryRunner.query(
      `ALTER TABLE "channels" ADD CONSTRAINT "fk_channels_model" FOREIGN KEY ("model_id") REFERENCES "models"("id") ON DELETE CASCADE ON UPDATE NO ACTION`,
    );
    await queryRunner.query(
      `ALTER TABLE "channels" ADD CONSTRAINT "fk_channels_version" FOREIGN KEY ("version_id") REFERENCES "model_versions"("id") ON DELETE CASCADE ON UPDATE NO ACTION`,
    );
    await queryRunner.query(
      `ALTER TABLE "channel_moves" ADD CONSTRAINT "fk_channel_moves_channel" FOREIGN KEY ("channel_id") REFERENCES "channels"("id") ON DELETE CASCADE ON UPDATE NO ACTION`,
    );
  }

  public async down(queryRunner: QueryRunner): Promise<void> {
    await queryRunner.query(`ALTER TABLE "channel_moves" DROP CONSTRAINT "fk_channel_moves_channel"`);
    await queryRunner.query(`ALTER TABLE "channels" DROP CONSTRAINT "fk_channels_version"`);
    await queryRunner.query(`ALTER TABLE "channels" DROP CONSTRAINT "fk_channels_model"`);
    await queryRunner.query(`ALTER TABLE "artifacts" DROP COLUMN "signing_key_id"`);
    await queryRunner.query(`ALTER TABLE "artifacts" DROP COLUMN "signature"`);
    await queryRunner.query(`ALTER TABLE "artifacts" DROP COLUMN "manifest_sha256"`);
    await queryRunner.query(`DROP INDEX "public"."ix_channel_moves_channel_moved"`);
    await queryRunner.query(`DROP TABLE "channel_moves"`);
    await queryRunner.query(`DROP INDEX "public"."ux_channels_model_name"`);
    await queryRunner.query(`DROP TABLE "channels"`);
  }
}
