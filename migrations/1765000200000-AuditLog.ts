import type { MigrationInterface, QueryRunner } from 'typeorm';

/**
 * The audit log (issue 16, item 4): every mutation through the API, append-only. The trigger refuses UPDATE and
 * DELETE of a row for everyone the application connects as (TRUNCATE too): a record, once written, stays.
 */
export class AuditLog1765000200000 implements MigrationInterface {
  name = 'AuditLog1765000200000';

  public async up(queryRunner: QueryRunner): Promise<void> {
    await queryRunner.query(
      `CREATE TABLE "audit_events" ("id" uuid NOT NULL DEFAULT gen_random_uuid(), "tenant_id" uuid, "actor" text NOT NULL, "key_id" uuid, "role" text, "action" text NOT NULL, "target_ids" jsonb NOT NULL DEFAULT '{}', "result_ids" jsonb NOT NULL DEFAULT '{}', "status" integer NOT NULL, "error_code" text, "ip" text NOT NULL DEFAULT '', "user_agent" text NOT NULL DEFAULT '', "at" TIMESTAMP WITH TIME ZONE NOT NULL DEFAULT now(), CONSTRAINT "pk_audit_events" PRIMARY KEY ("id"))`,
    );
    await queryRunner.query(`CREATE INDEX "ix_audit_events_tenant_at" ON "audit_events"  ("tenant_id", "at", "id") `);
    await queryRunner.query(
      `CREATE FUNCTION kiln_audit_events_append_only() RETURNS trigger LANGUAGE plpgsql AS $$
       BEGIN
         RAISE EXCEPTION 'audit_events is append-only (% refused)', TG_OP;
       END $$`,
    );
    await queryRunner.query(
      `CREATE TRIGGER audit_events_append_only BEFORE UPDATE OR DELETE ON "audit_events"
       FOR EACH ROW EXECUTE FUNCTION kiln_audit_events_append_only()`,
    );
    await queryRunner.query(
      `CREATE TRIGGER audit_events_no_truncate BEFORE TRUNCATE ON "audit_events"
       FOR EACH STATEMENT EXECUTE FUNCTION kiln_audit_events_append_only()`,
    );
  }

  public async down(queryRunner: QueryRunner): Promise<void> {
    await queryRunner.query(`DROP TRIGGER audit_events_no_truncate ON "audit_events"`);
    await queryRunner.query(`DROP TRIGGER audit_events_append_only ON "audit_events"`);
    await queryRunner.query(`DROP FUNCTION kiln_audit_events_append_only()`);
    await queryRunner.query(`DROP INDEX "public"."ix_audit_events_tenant_at"`);
    await queryRunner.query(`DROP TABLE "audit_events"`);
  }
}
