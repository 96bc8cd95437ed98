import type { MigrationInterface, QueryRunner } from 'typeorm';

/**
 * Which build worker ran a build (issue 15, item 7): with several build hosts an operator needs to know where a
 * build ran (a flaky host, a bad toolchain), and the scale-out test proves builds spread across workers by it.
 */
export class BuildWorker1765000750000 implements MigrationInterface {
  name = 'BuildWorker1765000750000';

  public async up(queryRunner: QueryRunner): Promise<void> {
    await queryRunner.query(`ALTER TABLE "builds" ADD "worker_id" text`);
  }

  public async down(queryRunner: QueryRunner): Promise<void> {
    await queryRunner.query(`ALTER TABLE "builds" DROP COLUMN "worker_id"`);
  }
}
