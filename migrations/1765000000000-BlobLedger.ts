import type { MigrationInterface, QueryRunner } from 'typeorm';

/**
 * Delete and garbage collection (issue 16, item 1): the ledger of content-addressed blobs, the pins builds hold on
 * them, the references artifacts hold on them, and the queue of S3 objects whose rows were deleted. Artifacts recorded
 * before this migration get their references from their manifests, and their blobs an unpinned row (they live
 * exactly as long as a reference does).
 */
export class BlobLedger1765000000000 implements MigrationInterface {
  name = 'BlobLedger1765000000000';

  public async up(queryRunner: QueryRunner): Promise<void> {
    await queryRunner.query(
      `CREATE TABLE "blobs" ("tenant_id" uuid NOT NULL, "sha256" text NOT NULL, "size_bytes" bigint NOT NULL, "created_at" TIMESTAMP WITH TIME ZONE NOT NULL DEFAULT now(), CONSTRAINT "pk_blobs" PRIMARY KEY ("tenant_id", "sha256"))`,
    );
    await queryRunner.query(
      `CREATE TABLE "artifact_blobs" ("artifact_id" uuid NOT NULL, "sha256" text NOT NULL, "tenant_id" uuid NOT NULL, CONSTRAINT "pk_artifact_blobs" PRIMARY KEY ("artifact_id", "sha256", "tenant_id"))`,
    );
    await queryRunner.query(`CREATE INDEX "ix_artifact_blobs_blob" ON "artifact_blobs"  ("tenant_id", "sha256") `);
    await queryRunner.query(
      `CREATE TABLE "blob_pins" ("tenant_id" uuid NOT NULL, "sha256" text NOT NULL, "holder" text NOT NULL, "pinned_until" TIMESTAMP WITH TIME ZONE NOT NULL, CONSTRAINT "pk_blob_pins" PRIMARY KEY ("tenant_id", "sha256", "holder"))`,
    );
    await queryRunner.query(`CREATE INDEX "ix_blob_pins_pinned_until" ON "blob_pins"  ("pinned_until") `);
    await queryRunner.query(
      `CREATE TABLE "object_deletions" ("object_key" text NOT NULL, "tenant_id" uuid NOT NULL, "enqueued_at" TIMESTAMP WITH TIME ZONE NOT NULL DEFAULT now(), CONSTRAINT "pk_object_deletions" PRIMARY KEY ("object_key"))`,
    );
    await queryRunner.query(`CREATE INDEX "ix_object_deletions_tenant" ON "object_deletions"  ("tenant_id") `);
    await queryRunner.query(
      `ALTER TABLE "artifact_blobs" ADD CONSTRAINT "fk_artifact_blobs_artifact" FOREIGN KEY ("artifact_id") REFERENCES "artifacts"("id") ON DELETE CASCADE ON UPDATE NO ACTION`,
    );
    await queryRunner.query(
      `ALTER TABLE "artifact_blobs" ADD CONSTRAINT "fk_artifact_blobs_blob" FOREIGN KEY ("tenant_id", "sha256") REFERENCES "blobs"("tenant_id","sha256") ON DELETE RESTRICT ON UPDATE NO ACTION`,
    );
    await queryRunner.query(
      `ALTER TABLE "blob_pins" ADD CONSTRAINT "fk_blob_pins_blob" FOREIGN KEY ("tenant_id", "sha256") REFERENCES "blobs"("tenant_id","sha256") ON DELETE CASCADE ON UPDATE NO ACTION`,
    );
    // Existing artifacts: their parts become ledger rows (unpinned) and references.
    await queryRunner.query(
      `INSERT INTO "blobs" ("tenant_id", "sha256", "size_bytes")
       SELECT a.tenant_id, p->>'sha256', MAX((p->>'size')::bigint)
         FROM "artifacts" a, jsonb_array_elements(a.manifest->'parts') p
        GROUP BY a.tenant_id, p->>'sha256'`,
    );
    await queryRunner.query(
      `INSERT INTO "artifact_blobs" ("artifact_id", "sha256", "tenant_id")
       SELECT DISTINCT a.id, p->>'sha256', a.tenant_id FROM "artifacts" a, jsonb_array_elements(a.manifest->'parts') p`,
    );
  }

  public async down(queryRunner: QueryRunner): Promise<void> {
    await queryRunner.query(`ALTER TABLE "blob_pins" DROP CONSTRAINT "fk_blob_pins_blob"`);
    await queryRunner.query(`ALTER TABLE "artifact_blobs" DROP CONSTRAINT "fk_artifact_blobs_blob"`);
    await queryRunner.query(`ALTER TABLE "artifact_blobs" DROP CONSTRAINT "fk_artifact_blobs_artifact"`);
    await queryRunner.query(`DROP INDEX "public"."ix_object_deletions_tenant"`);
    await queryRunner.query(`DROP TABLE "object_deletions"`);
    await queryRunner.query(`DROP INDEX "public"."ix_blob_pins_pinned_until"`);
    await queryRunner.query(`DROP TABLE "blob_pins"`);
    await queryRunner.query(`DROP INDEX "public"."ix_artifact_blobs_blob"`);
    await queryRunner.query(`DROP TABLE "artifact_blobs"`);
    await queryRunner.query(`DROP TABLE "blobs"`);
  }
}
