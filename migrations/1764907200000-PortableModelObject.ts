import type { MigrationInterface, QueryRunner } from 'typeorm';

/**
 * A version's object in S3 is now the portable archive Kiln writes from the upload (sample-input pickles
 * emptied, @kiln/pt2 writePortablePt2), not the uploaded file: its own sha256 and size, which build workers
 * verify before compiling and devices verify before loading. Versions stored before kept the uploaded file as
 * their object, so theirs are the file's.
 */
export class PortableModelObject1764907200000 implements MigrationInterface {
  name = 'PortableModelObject1764907200000';

  public async up(queryRunner: QueryRunner): Promise<void> {
    await queryRunner.query(`ALTER TABLE "model_versions" ADD "stored_sha256" text`);
    await queryRunner.query(`ALTER TABLE "model_versions" ADD "stored_size_bytes" bigint`);
    await queryRunner.query(
      `UPDATE "model_versions" SET "stored_sha256" = "file_sha256", "stored_size_bytes" = "size_bytes"`,
    );
    await queryRunner.query(`ALTER TABLE "model_versions" ALTER COLUMN "stored_sha256" SET NOT NULL`);
    await queryRunner.query(`ALTER TABLE "model_versions" ALTER COLUMN "stored_size_bytes" SET NOT NULL`);
  }

  public async down(queryRunner: QueryRunner): Promise<void> {
    await queryRunner.query(`ALTER TABLE "model_versions" DROP COLUMN "stored_size_bytes"`);
    await queryRunner.query(`ALTER TABLE "model_versions" DROP COLUMN "stored_sha256"`);
  }
}
