import type { MigrationInterface, QueryRunner } from 'typeorm';

/**
 * Presigned multipart uploads: one row per upload (S3 UploadId, reserved version id, part plan, status),
 * scoped to the tenant; the periodic sweep finds expired ones through ix_uploads_status_expires.
 */
export class Uploads1764172800000 implements MigrationInterface {
  name = 'Uploads1764172800000';

  public async up(queryRunner: QueryRunner): Promise<void> {
    await queryRunner.query(
      `CREATE TABLE "uploads" ("id" uuid NOT NULL, "tenant_id" uuid NOT NULL, "model_id" uuid NOT NULL, "version_id" uuid NOT NULL, "object_key" text NOT NULL, "s3_upload_id" text NOT NULL, "filename" text NOT NULL DEFAULT '', "size_bytes" bigint NOT NULL, "part_size" bigint NOT NULL, "part_count" integer NOT NULL, "checksum_algorithm" text NOT NULL, "status" text NOT NULL, "part_checksums" jsonb NOT NULL DEFAULT '{}', "idempotency_key" text, "error_code" text, "error_message" text, "expires_at" TIMESTAMP WITH TIME ZONE NOT NULL, "completing_since" TIMESTAMP WITH TIME ZONE, "created_at" TIMESTAMP WITH TIME ZONE NOT NULL DEFAULT now(), "updated_at" TIMESTAMP WITH TIME ZONE NOT NULL DEFAULT now(), "finished_at" TIMESTAMP WITH TIME ZONE, CONSTRAINT "pk_uploads" PRIMARY KEY ("id"))`,
    );
    await queryRunner.query(`CREATE UNIQUE INDEX "ux_uploads_version" ON "uploads"  ("version_id") `);
    await queryRunner.query(
      `CREATE UNIQUE INDEX "ux_uploads_tenant_idempotency" ON "uploads"  ("tenant_id", "idempotency_key") WHERE "idempotency_key" IS NOT NULL`,
    );
    await queryRunner.query(`CREATE INDEX "ix_uploads_status_expires" ON "uploads"  ("status", "expires_at") `);
    await queryRunner.query(`CREATE INDEX "ix_uploads_tenant_created" ON "uploads"  ("tenant_id", "created_at") `);
    await queryRunner.query(
      `ALTER TABLE "uploads" ADD CONSTRAINT "fk_uploads_model" FOREIGN KEY ("model_id") REFERENCES "models"("id") ON DELETE CASCADE ON UPDATE NO ACTION`,
    );
  }

  public async down(queryRunner: QueryRunner): Promise<void> {
    await queryRunner.query(`ALTER TABLE "uploads" DROP CONSTRAINT "fk_uploads_model"`);
    await queryRunner.query(`DROP INDEX "public"."ix_uploads_tenant_created"`);
    await queryRunner.query(`DROP INDEX "public"."ix_uploads_status_expires"`);
    await queryRunner.query(`DROP INDEX "public"."ux_uploads_tenant_idempotency"`);
    await queryRunner.query(`DROP INDEX "public"."ux_uploads_version"`);
    await queryRunner.query(`DROP TABLE "uploads"`);
  }
}
