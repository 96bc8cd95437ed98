import type { MigrationInterface, QueryRunner } from 'typeorm';

/**
 * Whether a compilation asked for a reproduction check (issue 17, item 4): each of its builds then runs the driver a
 * second time in a fresh job folder and compares the parts. False for every compilation made before.
 */
export class CompilationReproduce1765000800000 implements MigrationInterface {
  name = 'CompilationReproduce1765000800000';

  public async up(queryRunner: QueryRunner): Promise<void> {
    await queryRunner.query(`ALTER TABLE "compilations" ADD "reproduce" boolean NOT NULL DEFAULT false`);
  }

  public async down(queryRunner: QueryRunner): Promise<void> {
    await queryRunner.query(`ALTER TABLE "compilations" DROP COLUMN "reproduce"`);
  }
}
