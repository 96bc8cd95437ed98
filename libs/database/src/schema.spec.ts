// Entities and migrations must agree: after running every migration on an empty database, TypeORM finds
// nothing to change; and every migration reverts cleanly. Uses a throwaway database on the local server.
import assert from 'node:assert/strict';
import { randomUUID } from 'node:crypto';
import { after, before, test } from 'node:test';
import { DataSource } from 'typeorm';
import { loadKilnConfig } from '@kiln/config';
import { MIGRATIONS } from '@kiln/migrations';
import { kilnDataSourceOptions } from './data-source-options.js';

const serverUrl = new URL(loadKilnConfig().DATABASE_URL);
const dbName = `kiln_schema_${randomUUID().slice(0, 8)}`;
const admin = new DataSource({ type: 'postgres', url: serverUrl.toString() });
let ds: DataSource;

before(async () => {
  await admin.initialize();
  await admin.query(`CREATE DATABASE ${dbName}`);
  const url = new URL(serverUrl);
  url.pathname = `/${dbName}`;
  ds = new DataSource(kilnDataSourceOptions(url.toString(), { logging: false }));
  await ds.initialize();
});

after(async () => {
  await ds?.destroy();
  await admin.query(`DROP DATABASE IF EXISTS ${dbName}`);
  await admin.destroy();
});

test('migrations create exactly the schema the entities describe, and revert cleanly', async () => {
  const applied = await ds.runMigrations();
  assert.ok(applied.length >= 2);
  const pending = await ds.driver.createSchemaBuilder().log();
  assert.deepEqual(
    pending.upQueries.map((q) => q.query),
    [],
    'entities and migrations disagree: write a migration',
  );
  for (let i = 0; i < applied.length; i++) await ds.undoLastMigration();
  const tables = await ds.query<unknown[]>(
    `SELECT table_name FROM information_schema.tables WHERE table_schema = 'public' AND table_name <> 'migrations'`,
  );
  assert.deepEqual(tables, []);
});

test('keys made before roles become owners (API keys) and devices (device tokens)', async () => {
  const url = new URL(serverUrl);
  const name = `kiln_roles_${randomUUID().slice(0, 8)}`;
  url.pathname = `/${name}`;
  await admin.query(`CREATE DATABASE ${name}`);
  const upTo = MIGRATIONS.findIndex((m) => m.name === 'KeyRoles1765000100000');
  assert.ok(upTo > 0);
  const before = new DataSource(
    kilnDataSourceOptions(url.toString(), { logging: false, migrations: MIGRATIONS.slice(0, upTo) }),
  );
  try {
    await before.initialize();
    await before.runMigrations();
    const [tenant] = await before.query<{ id: string }[]>(`INSERT INTO tenants (name) VALUES ('t') RETURNING id`);
    await before.query(
      `INSERT INTO api_keys (tenant_id, prefix, key_hash, kind) VALUES ($1, 'kiln_a', 'h1', 'api'), ($1, 'kdev_b', 'h2', 'device')`,
      [tenant.id],
    );
    await before.destroy();
    const after = new DataSource(kilnDataSourceOptions(url.toString(), { logging: false }));
    await after.initialize();
    await after.runMigrations();
    const roles = await after.query<{ prefix: string; role: string }[]>(
      `SELECT prefix, role FROM api_keys ORDER BY prefix`,
    );
    assert.deepEqual(roles, [
      { prefix: 'kdev_b', role: 'device' },
      { prefix: 'kiln_a', role: 'owner' },
    ]);
    await after.destroy();
  } finally {
    if (before.isInitialized) await before.destroy();
    await admin.query(`DROP DATABASE IF EXISTS ${name}`);
  }
});
