import type { MigrationInterface, QueryRunner } from 'typeorm';

/**
 * Roles of keys (issue 16, item 3): owner, developer, viewer, device. Keys made before roles existed keep what they
 * could do: API keys become owners, device tokens devices.
 */
export class KeyRoles1765000100000 implements MigrationInterface {
  name = 'KeyRoles1765000100000';

  public async up(queryRunner: QueryRunner): Promise<void> {
    await queryRunner.query(`ALTER TABLE "api_keys" ADD "role" text NOT NULL DEFAULT 'owner'`);
    await queryRunner.query(`UPDATE "api_keys" SET "role" = 'device' WHERE "kind" = 'device'`);
  }

  public async down(queryRunner: QueryRunner): Promise<void> {
    await queryRunner.query(`ALTER TABLE "api_keys" DROP COLUMN "role"`);
  }
}
