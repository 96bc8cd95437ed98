import type { MigrationInterface, QueryRunner } from 'typeorm';

/**
 * Fleet evidence (issue 12): raw device reports, partitioned by month of their UUIDv7 report id (partitions are
 * created by the API as months come, see TelemetryPartitions), the rollups the resolver and the rollout gates
 * read (fleet_evidence, rollout_stats), staged rollouts with their history, and the signed manifest of each
 * version's portable graph. docs/fleet.md explains the forms.
 */
export class FleetEvidence1764950400000 implements MigrationInterface {
  name = 'FleetEvidence1764950400000';

  public async up(queryRunner: QueryRunner): Promise<void> {
    await queryRunner.query(
      `CREATE TABLE "telemetry_reports" ("report_id" uuid NOT NULL, "tenant_id" uuid NOT NULL, "device_id" text NOT NULL, "device_class" text NOT NULL, "model_id" uuid NOT NULL, "version_id" uuid NOT NULL, "artifact_id" uuid, "ran" text NOT NULL, "outcome" text NOT NULL, "failure_stage" text, "error_code" text, "latency" jsonb NOT NULL, "rollout_id" uuid, "rollout_stage" integer, "rollout_arm" text, "runtime_version" text NOT NULL DEFAULT '', "received_at" TIMESTAMP WITH TIME ZONE NOT NULL DEFAULT now(), CONSTRAINT "pk_telemetry_reports" PRIMARY KEY ("report_id")) PARTITION BY RANGE ("report_id")`,
    );
    await queryRunner.query(
      `CREATE INDEX "ix_telemetry_reports_tenant_version" ON "telemetry_reports"  ("tenant_id", "version_id") `,
    );
    await queryRunner.query(
      `CREATE TABLE "fleet_evidence" ("tenant_id" uuid NOT NULL, "subject" text NOT NULL, "device_class" text NOT NULL, "device_class_label" text NOT NULL, "model_id" uuid NOT NULL, "artifact_id" uuid, "reports" bigint NOT NULL DEFAULT '0', "failures" bigint NOT NULL DEFAULT '0', "failure_codes" jsonb NOT NULL DEFAULT '{}', "other_errors" bigint NOT NULL DEFAULT '0', "speedup_samples" bigint NOT NULL DEFAULT '0', "log_speedup_sum" double precision NOT NULL DEFAULT '0', "log_speedup_sq_sum" double precision NOT NULL DEFAULT '0', "sample_fingerprint" jsonb NOT NULL, "first_report_at" TIMESTAMP WITH TIME ZONE NOT NULL, "last_report_at" TIMESTAMP WITH TIME ZONE NOT NULL, CONSTRAINT "pk_fleet_evidence" PRIMARY KEY ("tenant_id", "subject", "device_class"))`,
    );
    await queryRunner.query(
      `CREATE INDEX "ix_fleet_evidence_tenant_model" ON "fleet_evidence"  ("tenant_id", "model_id") `,
    );
    await queryRunner.query(
      `CREATE INDEX "ix_fleet_evidence_tenant_artifact" ON "fleet_evidence"  ("tenant_id", "artifact_id") `,
    );
    await queryRunner.query(
      `CREATE TABLE "rollouts" ("id" uuid NOT NULL, "tenant_id" uuid NOT NULL, "model_id" uuid NOT NULL, "channel_id" uuid NOT NULL, "from_version_id" uuid NOT NULL, "to_version_id" uuid NOT NULL, "stages" integer array NOT NULL, "stage_index" integer NOT NULL DEFAULT '0', "status" text NOT NULL, "gates" jsonb NOT NULL, "class_states" jsonb NOT NULL DEFAULT '{}', "workflow_id" text NOT NULL, "created_by_key_id" uuid NOT NULL, "stage_started_at" TIMESTAMP WITH TIME ZONE NOT NULL, "finished_at" TIMESTAMP WITH TIME ZONE, "created_at" TIMESTAMP WITH TIME ZONE NOT NULL DEFAULT now(), "updated_at" TIMESTAMP WITH TIME ZONE NOT NULL DEFAULT now(), CONSTRAINT "pk_rollouts" PRIMARY KEY ("id"))`,
    );
    await queryRunner.query(
      `CREATE UNIQUE INDEX "ux_rollouts_channel_active" ON "rollouts"  ("channel_id") WHERE status IN ('running', 'paused')`,
    );
    await queryRunner.query(`CREATE INDEX "ix_rollouts_channel_created" ON "rollouts"  ("channel_id", "created_at") `);
    await queryRunner.query(
      `CREATE TABLE "rollout_events" ("id" uuid NOT NULL DEFAULT gen_random_uuid(), "rollout_id" uuid NOT NULL, "tenant_id" uuid NOT NULL, "kind" text NOT NULL, "stage_index" integer NOT NULL, "percent" integer NOT NULL, "device_class" text, "message" text NOT NULL, "detail" jsonb NOT NULL DEFAULT '{}', "actor" text NOT NULL, "at" TIMESTAMP WITH TIME ZONE NOT NULL DEFAULT now(), CONSTRAINT "pk_rollout_events" PRIMARY KEY ("id"))`,
    );
    await queryRunner.query(`CREATE INDEX "ix_rollout_events_rollout_at" ON "rollout_events"  ("rollout_id", "at") `);
    await queryRunner.query(
      `CREATE TABLE "rollout_stats" ("rollout_id" uuid NOT NULL, "stage_index" integer NOT NULL, "device_class" text NOT NULL, "arm" text NOT NULL, "tenant_id" uuid NOT NULL, "device_class_label" text NOT NULL, "reports" bigint NOT NULL DEFAULT '0', "failures" bigint NOT NULL DEFAULT '0', "failure_codes" jsonb NOT NULL DEFAULT '{}', "latency_samples" bigint NOT NULL DEFAULT '0', "log_ms_sum" double precision NOT NULL DEFAULT '0', "log_ms_sq_sum" double precision NOT NULL DEFAULT '0', "last_report_at" TIMESTAMP WITH TIME ZONE NOT NULL, CONSTRAINT "pk_rollout_stats" PRIMARY KEY ("rollout_id", "stage_index", "device_class", "arm"))`,
    );
    await queryRunner.query(`ALTER TABLE "model_versions" ADD "portable_manifest_key" text NOT NULL DEFAULT ''`);
    await queryRunner.query(`ALTER TABLE "model_versions" ADD "portable_manifest_sha256" text NOT NULL DEFAULT ''`);
    await queryRunner.query(`ALTER TABLE "model_versions" ADD "portable_signature" text NOT NULL DEFAULT ''`);
    await queryRunner.query(`ALTER TABLE "model_versions" ADD "portable_signing_key_id" text NOT NULL DEFAULT ''`);
    await queryRunner.query(
      `ALTER TABLE "rollouts" ADD CONSTRAINT "fk_rollouts_channel" FOREIGN KEY ("channel_id") REFERENCES "channels"("id") ON DELETE CASCADE ON UPDATE NO ACTION`,
    );
    await queryRunner.query(
      `ALTER TABLE "rollout_events" ADD CONSTRAINT "fk_rollout_events_rollout" FOREIGN KEY ("rollout_id") REFERENCES "rollouts"("id") ON DELETE CASCADE ON UPDATE NO ACTION`,
    );
  }

  public async down(queryRunner: QueryRunner): Promise<void> {
    await queryRunner.query(`ALTER TABLE "rollout_events" DROP CONSTRAINT "fk_rollout_events_rollout"`);
    await queryRunner.query(`ALTER TABLE "rollouts" DROP CONSTRAINT "fk_rollouts_channel"`);
    await queryRunner.query(`ALTER TABLE "model_versions" DROP COLUMN "portable_signing_key_id"`);
    await queryRunner.query(`ALTER TABLE "model_versions" DROP COLUMN "portable_signature"`);
    await queryRunner.query(`ALTER TABLE "model_versions" DROP COLUMN "portable_manifest_sha256"`);
    await queryRunner.query(`ALTER TABLE "model_versions" DROP COLUMN "portable_manifest_key"`);
    await queryRunner.query(`DROP TABLE "rollout_stats"`);
    await queryRunner.query(`DROP INDEX "public"."ix_rollout_events_rollout_at"`);
    await queryRunner.query(`DROP TABLE "rollout_events"`);
    await queryRunner.query(`DROP INDEX "public"."ix_rollouts_channel_created"`);
    await queryRunner.query(`DROP INDEX "public"."ux_rollouts_channel_active"`);
    await queryRunner.query(`DROP TABLE "rollouts"`);
    await queryRunner.query(`DROP INDEX "public"."ix_fleet_evidence_tenant_artifact"`);
    await queryRunner.query(`DROP INDEX "public"."ix_fleet_evidence_tenant_model"`);
    await queryRunner.query(`DROP TABLE "fleet_evidence"`);
    // Drops every monthly partition with it.
    await queryRunner.query(`DROP INDEX "public"."ix_telemetry_reports_tenant_version"`);
    await queryRunner.query(`DROP TABLE "telemetry_reports"`);
  }
}
