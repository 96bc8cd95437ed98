import type { MigrationInterface, QueryRunner } from 'typeorm';

/** Tenants and keys, models and versions, compilations with one build per target, artifacts. */
export class InitialSchema1764151200000 implements MigrationInterface {
  name = 'InitialSchema1764151200000';

  public async up(queryRunner: QueryRunner): Promise<void> {
    await queryRunner.query(
      `CREATE TABLE "tenants" ("id" uuid NOT NULL DEFAULT gen_random_uuid(), "name" text NOT NULL, "created_at" TIMESTAMP WITH TIME ZONE NOT NULL DEFAULT now(), CONSTRAINT "pk_tenants" PRIMARY KEY ("id"))`,
    );
    await queryRunner.query(
      `CREATE TABLE "api_keys" ("id" uuid NOT NULL DEFAULT gen_random_uuid(), "tenant_id" uuid NOT NULL, "prefix" text NOT NULL, "key_hash" text NOT NULL, "kind" text NOT NULL DEFAULT 'api', "name" text NOT NULL DEFAULT '', "created_at" TIMESTAMP WITH TIME ZONE NOT NULL DEFAULT now(), "revoked_at" TIMESTAMP WITH TIME ZONE, CONSTRAINT "pk_api_keys" PRIMARY KEY ("id"))`,
    );
    await queryRunner.query(`CREATE INDEX "ix_api_keys_tenant" ON "api_keys"  ("tenant_id")`);
    await queryRunner.query(`CREATE UNIQUE INDEX "ux_api_keys_prefix" ON "api_keys"  ("prefix")`);
    await queryRunner.query(
      `CREATE TABLE "artifacts" ("id" uuid NOT NULL DEFAULT gen_random_uuid(), "tenant_id" uuid NOT NULL, "cache_key" text NOT NULL, "model_content_hash" text NOT NULL, "target_id" text NOT NULL, "recipe_hash" text NOT NULL, "manifest_key" text NOT NULL, "manifest" jsonb NOT NULL, "size_bytes" bigint NOT NULL, "created_at" TIMESTAMP WITH TIME ZONE NOT NULL DEFAULT now(), CONSTRAINT "pk_artifacts" PRIMARY KEY ("id"))`,
    );
    await queryRunner.query(
      `CREATE INDEX "ix_artifacts_tenant_content" ON "artifacts"  ("tenant_id", "model_content_hash")`,
    );
    await queryRunner.query(
      `CREATE UNIQUE INDEX "ux_artifacts_tenant_cache_key" ON "artifacts"  ("tenant_id", "cache_key")`,
    );
    await queryRunner.query(
      `CREATE TABLE "models" ("id" uuid NOT NULL DEFAULT gen_random_uuid(), "tenant_id" uuid NOT NULL, "name" text NOT NULL, "description" text NOT NULL DEFAULT '', "created_at" TIMESTAMP WITH TIME ZONE NOT NULL DEFAULT now(), "updated_at" TIMESTAMP WITH TIME ZONE NOT NULL DEFAULT now(), CONSTRAINT "pk_models" PRIMARY KEY ("id"))`,
    );
    await queryRunner.query(`CREATE UNIQUE INDEX "ux_models_tenant_name" ON "models"  ("tenant_id", "name")`);
    await queryRunner.query(
      `CREATE TABLE "model_versions" ("id" uuid NOT NULL, "tenant_id" uuid NOT NULL, "model_id" uuid NOT NULL, "number" integer NOT NULL, "object_key" text NOT NULL, "size_bytes" bigint NOT NULL, "file_sha256" text NOT NULL, "content_hash" text NOT NULL, "summary" jsonb NOT NULL, "original_filename" text NOT NULL DEFAULT '', "created_at" TIMESTAMP WITH TIME ZONE NOT NULL DEFAULT now(), CONSTRAINT "pk_model_versions" PRIMARY KEY ("id"))`,
    );
    await queryRunner.query(
      `CREATE INDEX "ix_model_versions_tenant_content" ON "model_versions"  ("tenant_id", "content_hash")`,
    );
    await queryRunner.query(
      `CREATE UNIQUE INDEX "ux_model_versions_model_number" ON "model_versions"  ("model_id", "number")`,
    );
    await queryRunner.query(
      `CREATE TABLE "compilations" ("id" uuid NOT NULL, "tenant_id" uuid NOT NULL, "model_version_id" uuid NOT NULL, "targets" text array NOT NULL, "status" text NOT NULL, "workflow_id" text NOT NULL, "idempotency_key" text, "created_at" TIMESTAMP WITH TIME ZONE NOT NULL DEFAULT now(), "updated_at" TIMESTAMP WITH TIME ZONE NOT NULL DEFAULT now(), "finished_at" TIMESTAMP WITH TIME ZONE, CONSTRAINT "pk_compilations" PRIMARY KEY ("id"))`,
    );
    await queryRunner.query(`CREATE INDEX "ix_compilations_version" ON "compilations"  ("model_version_id")`);
    await queryRunner.query(
      `CREATE UNIQUE INDEX "ux_compilations_tenant_idempotency" ON "compilations"  ("tenant_id", "idempotency_key") WHERE "idempotency_key" IS NOT NULL`,
    );
    await queryRunner.query(
      `CREATE INDEX "ix_compilations_tenant_created" ON "compilations"  ("tenant_id", "created_at")`,
    );
    await queryRunner.query(
      `CREATE TABLE "builds" ("id" uuid NOT NULL DEFAULT gen_random_uuid(), "tenant_id" uuid NOT NULL, "compilation_id" uuid NOT NULL, "target_id" text NOT NULL, "cache_key" text NOT NULL, "status" text NOT NULL, "phase" text, "attempt" integer NOT NULL DEFAULT '0', "error_code" text, "error_message" text, "log" text NOT NULL DEFAULT '', "artifact_id" uuid, "started_at" TIMESTAMP WITH TIME ZONE, "finished_at" TIMESTAMP WITH TIME ZONE, "created_at" TIMESTAMP WITH TIME ZONE NOT NULL DEFAULT now(), "updated_at" TIMESTAMP WITH TIME ZONE NOT NULL DEFAULT now(), CONSTRAINT "pk_builds" PRIMARY KEY ("id"))`,
    );
    await queryRunner.query(
      `CREATE UNIQUE INDEX "ux_builds_compilation_target" ON "builds"  ("compilation_id", "target_id")`,
    );
    await queryRunner.query(
      `ALTER TABLE "api_keys" ADD CONSTRAINT "fk_api_keys_tenant" FOREIGN KEY ("tenant_id") REFERENCES "tenants"("id") ON DELETE CASCADE ON UPDATE NO ACTION`,
    );
    await queryRunner.query(
      `ALTER TABLE "models" ADD CONSTRAINT "fk_models_tenant" FOREIGN KEY ("tenant_id") REFERENCES "tenants"("id") ON DELETE CASCADE ON UPDATE NO ACTION`,
    );
    await queryRunner.query(
      `ALTER TABLE "model_versions" ADD CONSTRAINT "fk_model_versions_model" FOREIGN KEY ("model_id") REFERENCES "models"("id") ON DELETE CASCADE ON UPDATE NO ACTION`,
    );
    await queryRunner.query(
      `ALTER TABLE "compilations" ADD CONSTRAINT "fk_compilations_version" FOREIGN KEY ("model_version_id") REFERENCES "model_versions"("id") ON DELETE CASCADE ON UPDATE NO ACTION`,
    );
    await queryRunner.query(
      `ALTER TABLE "builds" ADD CONSTRAINT "fk_builds_compilation" FOREIGN KEY ("compilation_id") REFERENCES "compilations"("id") ON DELETE CASCADE ON UPDATE NO ACTION`,
    );
    await queryRunner.query(
      `ALTER TABLE "builds" ADD CONSTRAINT "fk_builds_artifact" FOREIGN KEY ("artifact_id") REFERENCES "artifacts"("id") ON DELETE SET NULL ON UPDATE NO ACTION`,
    );
  }

  public async down(queryRunner: QueryRunner): Promise<void> {
    await queryRunner.query(`ALTER TABLE "builds" DROP CONSTRAINT "fk_builds_artifact"`);
    await queryRunner.query(`ALTER TABLE "builds" DROP CONSTRAINT "fk_builds_compilation"`);
    await queryRunner.query(`ALTER TABLE "compilations" DROP CONSTRAINT "fk_compilations_version"`);
    await queryRunner.query(`ALTER TABLE "model_versions" DROP CONSTRAINT "fk_model_versions_model"`);
    await queryRunner.query(`ALTER TABLE "models" DROP CONSTRAINT "fk_models_tenant"`);
    await queryRunner.query(`ALTER TABLE "api_keys" DROP CONSTRAINT "fk_api_keys_tenant"`);
    await queryRunner.query(`DROP INDEX "public"."ux_builds_compilation_target"`);
    await queryRunner.query(`DROP TABLE "builds"`);
    await queryRunner.query(`DROP INDEX "public"."ix_compilations_tenant_created"`);
    await queryRunner.query(`DROP INDEX "public"."ux_compilations_tenant_idempotency"`);
    await queryRunner.query(`DROP INDEX "public"."ix_compilations_version"`);
    await queryRunner.query(`DROP TABLE "compilations"`);
    await queryRunner.query(`DROP INDEX "public"."ux_model_versions_model_number"`);
    await queryRunner.query(`DROP INDEX "public"."ix_model_versions_tenant_content"`);
    await queryRunner.query(`DROP TABLE "model_versions"`);
    await queryRunner.query(`DROP INDEX "public"."ux_models_tenant_name"`);
    await queryRunner.query(`DROP TABLE "models"`);
    await queryRunner.query(`DROP INDEX "public"."ux_artifacts_tenant_cache_key"`);
    await queryRunner.query(`DROP INDEX "public"."ix_artifacts_tenant_content"`);
    await queryRunner.query(`DROP TABLE "artifacts"`);
    await queryRunner.query(`DROP INDEX "public"."ux_api_keys_prefix"`);
    await queryRunner.query(`DROP INDEX "public"."ix_api_keys_tenant"`);
    await queryRunner.query(`DROP TABLE "api_keys"`);
    await queryRunner.query(`DROP TABLE "tenants"`);
  }
}
