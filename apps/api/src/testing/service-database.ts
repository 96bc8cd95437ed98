// For unit tests of one API service against real PostgreSQL: a throwaway database with every migration applied (the
// service's SQL runs for real; its other collaborators are fakes), and rows made with the entities' own repositories.
import { randomUUID } from 'node:crypto';
import { readFileSync } from 'node:fs';
import path from 'node:path';
import { DataSource } from 'typeorm';
import { loadKilnConfig } from '@kiln/config';
import type { ArtifactManifest, Pt2Summary } from '@kiln/contracts';
import { kilnDataSourceOptions, ModelEntity, ModelVersionEntity, TenantEntity } from '@kiln/database';

export interface ServiceDatabase {
  ds: DataSource;
  destroy(): Promise<void>;
}

/** Creates `kiln_unit_<random>` on the configured server, migrates it, and drops it again on destroy(). */
export async function createServiceDatabase(): Promise<ServiceDatabase> {
  const serverUrl = new URL(loadKilnConfig().DATABASE_URL);
  const name = `kiln_unit_${randomUUID().slice(0, 8)}`;
  const admin = new DataSource({ type: 'postgres', url: serverUrl.toString() });
  await admin.initialize();
  await admin.query(`CREATE DATABASE ${name}`);
  const url = new URL(serverUrl);
  url.pathname = `/${name}`;
  const ds = new DataSource(kilnDataSourceOptions(url.toString(), { logging: false }));
  await ds.initialize();
  await ds.runMigrations();
  return {
    ds,
    async destroy() {
      await ds.destroy();
      await admin.query(`DROP DATABASE IF EXISTS ${name}`);
      await admin.destroy();
    },
  };
}

/** A tenant with one model and `versions` versions (numbers 1..n), as the upload path would leave them. */
export async function seedModel(
  ds: DataSource,
  versions = 2,
): Promise<{ tenantId: string; modelId: string; versionIds: string[] }> {
  const tenant = await ds.getRepository(TenantEntity).save({ name: `unit-${randomUUID().slice(0, 8)}` });
  const model = await ds.getRepository(ModelEntity).save({ tenantId: tenant.id, name: 'm' });
  const versionIds: string[] = [];
  for (let n = 1; n <= versions; n++) {
    const id = randomUUID();
    await ds.getRepository(ModelVersionEntity).insert({
      id,
      tenantId: tenant.id,
      modelId: model.id,
      number: n,
      objectKey: `tenants/${tenant.id}/models/${id}.pt2`,
      sizeBytes: 1,
      fileSha256: 'a'.repeat(64),
      storedSha256: 'b'.repeat(64),
      storedSizeBytes: 1,
      contentHash: `${n}`.padStart(64, 'c'),
      summary: {} as Pt2Summary,
    });
    versionIds.push(id);
  }
  return { tenantId: tenant.id, modelId: model.id, versionIds };
}

/** A real x86-64-v2 artifact manifest (test/fixtures/manifests), for artifact rows. */
export const V2_MANIFEST = JSON.parse(
  readFileSync(
    path.resolve(import.meta.dirname, '../../../../test/fixtures/manifests/cpu/linux-x86_64-v2.json'),
    'utf8',
  ),
) as ArtifactManifest;
