import type { MigrationInterface, QueryRunner } from 'typeorm';

/**
 * Retention policies (issue 16, item 2): one row per tenant that has one. A version is kept while it is among its
 * model's newest `keep_last_versions`, or younger than `max_age_days`; a tenant without a row keeps everything.
 */
export class RetentionPolicies1765000300000 implements MigrationInterface {
  name = 'RetentionPolicies1765000300000';

  public async up(queryRunner: QueryRunner): Promise<void> {
    await queryRunner.query(
      `CREATE TABLE "retention_policies" (
        "tenant_id" uuid NOT NULL,
        "keep_last_versions" int,
        "max_age_days" int,
        "updated_at" timestamptz NOT NULL DEFAULT now(),
        CONSTRAINT "pk_retention_policies" PRIMARY KEY ("tenant_id")
      )`,
    );
    await queryRunner.query(
      `ALTER TABLE "retention_policies" ADD CONSTRAINT "fk_retention_policies_tenant"
         FOREIGN KEY ("tenant_id") REFERENCES "tenants"("id") ON DELETE CASCADE`,
    );
  }

  public async down(queryRunner: QueryRunner): Promise<void> {
    await queryRunner.query(`DROP TABLE "retention_policies"`);
  }
}
