import type { MigrationInterface, QueryRunner } from 'typeorm';

/**
 * Keys and fair use (issue 10, items 7 and 9):
 * - api_keys: `model_scope` (the models a device token is enrolled for, `{*}` = all; a later role column can
 *   scope other keys the same way), `expires_at` (end of a rotation's grace period), `rotated_from_id`.
 * - Triggers NOTIFY `kiln_api_keys` whenever a key row (or its tenant, whose rate limit the cached key carries)
 *   changes or goes away, so every API replica evicts its key cache at once (revocation takes effect on the next
 *   request, not after a TTL).
 * - tenants: per-tenant quota and rate-limit overrides (NULL = the operator's default from KilnConfig).
 * - rate_limits: the shared counters of the per-key rate limiter (rate-limiter-flexible's RateLimiterPostgres
 *   layout: key, points, expire in epoch ms), so the limit holds across API replicas.
 */
export class KeyScopesAndQuotas1764860000000 implements MigrationInterface {
  name = 'KeyScopesAndQuotas1764860000000';

  public async up(queryRunner: QueryRunner): Promise<void> {
    await queryRunner.query(`ALTER TABLE "tenants" ADD "quota_concurrent_builds" integer`);
    await queryRunner.query(`ALTER TABLE "tenants" ADD "quota_uploads_per_hour" integer`);
    await queryRunner.query(`ALTER TABLE "tenants" ADD "quota_stored_bytes" bigint`);
    await queryRunner.query(`ALTER TABLE "tenants" ADD "rate_limit_per_minute" integer`);
    await queryRunner.query(`ALTER TABLE "api_keys" ADD "model_scope" text array NOT NULL DEFAULT '{*}'`);
    await queryRunner.query(`ALTER TABLE "api_keys" ADD "expires_at" TIMESTAMP WITH TIME ZONE`);
    await queryRunner.query(`ALTER TABLE "api_keys" ADD "rotated_from_id" uuid`);
    await queryRunner.query(
      `ALTER TABLE "api_keys" ADD CONSTRAINT "fk_api_keys_rotated_from" FOREIGN KEY ("rotated_from_id") REFERENCES "api_keys"("id") ON DELETE SET NULL ON UPDATE NO ACTION`,
    );
    await queryRunner.query(
      `CREATE FUNCTION "kiln_notify_api_key_change"() RETURNS trigger LANGUAGE plpgsql AS $$
       BEGIN
         PERFORM pg_notify('kiln_api_keys', TG_TABLE_NAME || ':' || OLD.id::text);
         RETURN NULL;
       END $$`,
    );
    await queryRunner.query(
      `CREATE TRIGGER "tr_api_keys_notify" AFTER UPDATE OR DELETE ON "api_keys" FOR EACH ROW EXECUTE FUNCTION "kiln_notify_api_key_change"()`,
    );
    await queryRunner.query(
      `CREATE TRIGGER "tr_tenants_notify" AFTER UPDATE OR DELETE ON "tenants" FOR EACH ROW EXECUTE FUNCTION "kiln_notify_api_key_change"()`,
    );
    await queryRunner.query(
      `CREATE TABLE "rate_limits" ("key" varchar(255) NOT NULL, "points" integer NOT NULL DEFAULT 0, "expire" bigint, CONSTRAINT "pk_rate_limits" PRIMARY KEY ("key"))`,
    );
  }

  public async down(queryRunner: QueryRunner): Promise<void> {
    await queryRunner.query(`DROP TABLE "rate_limits"`);
    await queryRunner.query(`DROP TRIGGER "tr_tenants_notify" ON "tenants"`);
    await queryRunner.query(`DROP TRIGGER "tr_api_keys_notify" ON "api_keys"`);
    await queryRunner.query(`DROP FUNCTION "kiln_notify_api_key_change"()`);
    await queryRunner.query(`ALTER TABLE "api_keys" DROP CONSTRAINT "fk_api_keys_rotated_from"`);
    await queryRunner.query(`ALTER TABLE "api_keys" DROP COLUMN "rotated_from_id"`);
    await queryRunner.query(`ALTER TABLE "api_keys" DROP COLUMN "expires_at"`);
    await queryRunner.query(`ALTER TABLE "api_keys" DROP COLUMN "model_scope"`);
    await queryRunner.query(`ALTER TABLE "tenants" DROP COLUMN "rate_limit_per_minute"`);
    await queryRunner.query(`ALTER TABLE "tenants" DROP COLUMN "quota_stored_bytes"`);
    await queryRunner.query(`ALTER TABLE "tenants" DROP COLUMN "quota_uploads_per_hour"`);
    await queryRunner.query(`ALTER TABLE "tenants" DROP COLUMN "quota_concurrent_builds"`);
  }
}
