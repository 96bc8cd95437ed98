// Entities and migrations must agree: after running every migration on an empty database, TypeORM finds
// nothing to change; and every migration reverts cleanly. Uses a throwaway database on the local server.
import assert from 'node:assert/strict';
import { randomUUID } from 'node:crypto';
import { after, before, test } from 'node:test';
import { DataSource } from 'typeorm';
import { loadKilnConfig } from '@kiln/config';
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
