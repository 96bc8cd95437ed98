// The blob ledger against the real PostgreSQL and S3 of the local stack: the three rules that make a sweep safe
// against a concurrent publish (blob-ledger.ts), each attacked with the interleaving it exists for. Each test uses a
// tenant id of its own (no tenant row is needed: the ledger's tables carry the id only).
import assert from 'node:assert/strict';
import { createHash, randomUUID } from 'node:crypto';
import { after, before, test } from 'node:test';
import { DataSource } from 'typeorm';
import { loadKilnConfig } from '@kiln/config';
import { kilnDataSourceOptions } from '@kiln/database';
import { objectKeys } from '@kiln/storage';
import { BlobGoneError, BlobLedger, type BlobPart } from './blob-ledger.js';
import { objectStorageFor } from './object-storage-for.js';

const config = loadKilnConfig();
const storage = objectStorageFor(config);
const ds = new DataSource(kilnDataSourceOptions(config.DATABASE_URL, { logging: false }));
let ledger: BlobLedger;

before(async () => {
  await ds.initialize();
  await ds.runMigrations();
  await storage.ensureBucket();
  ledger = new BlobLedger(ds, storage);
});

after(async () => {
  await ds.destroy();
  storage.client.destroy();
});

/** A blob stored in S3 (as publishArtifact leaves one), of a fresh tenant id. */
async function storedBlob(): Promise<{ tenantId: string; part: BlobPart; key: string }> {
  const tenantId = randomUUID();
  const bytes = Buffer.from(`blob ${randomUUID()}`);
  const part = { sha256: createHash('sha256').update(bytes).digest('hex'), size: bytes.length };
  const key = objectKeys.blob(tenantId, part.sha256);
  await storage.putBytes(key, bytes);
  return { tenantId, part, key };
}

/** An artifact row to hang references on (what publishArtifact inserts in the same transaction). */
async function artifactRow(tenantId: string, tx = ds.manager): Promise<string> {
  const [row] = await tx.query<{ id: string }[]>(
    `INSERT INTO artifacts (tenant_id, cache_key, model_content_hash, target_id, recipe_hash, manifest_key, manifest,
                            size_bytes, manifest_sha256, signature, signing_key_id)
     VALUES ($1, $2, 'h', 't', 'r', 'k', '{}', 1, 's', 'sig', 'key') RETURNING id`,
    [tenantId, randomUUID()],
  );
  return row.id;
}

async function lapsePin(tenantId: string): Promise<void> {
  await ds.query(`UPDATE blob_pins SET pinned_until = now() - interval '1 second' WHERE tenant_id = $1`, [tenantId]);
}

test('an unreferenced blob is kept while pinned and swept once the pin lapsed', async () => {
  const { tenantId, part, key } = await storedBlob();
  await ledger.pin(tenantId, 'build-1', [part], 600);
  assert.deepEqual(await ledger.collect(tenantId), { objectsDeleted: 0, blobsDeleted: 0 });
  assert.equal(await storage.size(key), part.size, 'a pinned blob stays (a build host was told it is stored)');

  await lapsePin(tenantId);
  assert.deepEqual(await ledger.collect(tenantId), { objectsDeleted: 0, blobsDeleted: 1 });
  assert.equal(await storage.size(key), null);
  assert.deepEqual(await ds.query(`SELECT 1 FROM blobs WHERE tenant_id = $1`, [tenantId]), []);
});

test("a build's release frees the blob at once, but not while another build still pins it", async () => {
  const { tenantId, part, key } = await storedBlob();
  await ledger.pin(tenantId, 'build-1', [part], 600);
  await ledger.pin(tenantId, 'build-2', [part], 600);
  await ledger.release(tenantId, 'build-1');
  assert.equal((await ledger.collect(tenantId)).blobsDeleted, 0, 'build-2 was told the blob is stored');
  await ledger.release(tenantId, 'build-2');
  assert.equal((await ledger.collect(tenantId)).blobsDeleted, 1);
  assert.equal(await storage.size(key), null);
});

test('a referenced blob is never swept, pinned or not, and goes once its last artifact does', async () => {
  const { tenantId, part, key } = await storedBlob();
  await ledger.pin(tenantId, 'build-1', [part], 600);
  const first = await artifactRow(tenantId);
  const second = await artifactRow(tenantId);
  await ds.transaction((tx) => ledger.reference(tx, tenantId, first, [part]));
  await ds.transaction((tx) => ledger.reference(tx, tenantId, second, [part]));
  await lapsePin(tenantId);

  assert.equal(await ledger.sweep(tenantId, part.sha256), false);
  await ds.query(`DELETE FROM artifacts WHERE id = $1`, [first]);
  assert.equal((await ledger.collect(tenantId)).blobsDeleted, 0, 'the other artifact still references it');
  assert.equal(await storage.size(key), part.size);
  // The foreign key backs the rule up: a referenced row cannot be deleted at all.
  await assert.rejects(ds.query(`DELETE FROM blobs WHERE tenant_id = $1`, [tenantId]), /fk_artifact_blobs_blob/);

  await ds.query(`DELETE FROM artifacts WHERE id = $1`, [second]);
  assert.equal((await ledger.collect(tenantId)).blobsDeleted, 1);
  assert.equal(await storage.size(key), null);
});

test('a publish that found the blob stored, then lost it to a sweep, records nothing', async () => {
  // The race of the issue: publishArtifact saw the blob with its size and skipped copying it; its pin lapsed (a
  // stalled publish) and a sweep deleted the blob; then the publish records the artifact.
  const { tenantId, part, key } = await storedBlob();
  await ledger.pin(tenantId, 'build-1', [part], 600);
  assert.equal(await storage.size(key), part.size, 'the publish checks S3 here and skips the copy');
  await lapsePin(tenantId);
  assert.equal(await ledger.sweep(tenantId, part.sha256), true);

  const artifactId = randomUUID();
  await assert.rejects(
    ds.transaction(async (tx) => {
      const id = await artifactRow(tenantId, tx);
      await ledger.reference(tx, tenantId, id, [part]);
    }),
    BlobGoneError,
  );
  assert.deepEqual(await ds.query(`SELECT 1 FROM artifacts WHERE tenant_id = $1`, [tenantId]), [], 'rolled back');
  assert.deepEqual(await ds.query(`SELECT 1 FROM artifact_blobs WHERE artifact_id = $1`, [artifactId]), []);

  // The same publish again (its retry) pins first, finds the blob missing and copies it: then it records.
  await ledger.pin(tenantId, 'build-1', [part], 600);
  assert.equal(await storage.size(key), null);
  await storage.putBytes(key, Buffer.alloc(part.size));
  await ds.transaction(async (tx) => ledger.reference(tx, tenantId, await artifactRow(tenantId, tx), [part]));
});

test('a blob whose row survived but whose object is gone is not referenced (a sweep that died mid-way)', async () => {
  const { tenantId, part, key } = await storedBlob();
  await ledger.pin(tenantId, 'build-1', [part], 600);
  await storage.delete(key);
  await assert.rejects(
    ds.transaction(async (tx) => ledger.reference(tx, tenantId, await artifactRow(tenantId, tx), [part])),
    BlobGoneError,
  );
});

test('a sweep concurrent with the transaction that references the blob keeps it', async () => {
  const { tenantId, part, key } = await storedBlob();
  await ledger.pin(tenantId, 'build-1', [part], 600);
  await lapsePin(tenantId);
  let referenced!: () => void;
  const inside = new Promise<void>((resolve) => (referenced = resolve));
  let commit!: () => void;
  const mayCommit = new Promise<void>((resolve) => (commit = resolve));
  const publishing = ds.transaction(async (tx) => {
    await ledger.reference(tx, tenantId, await artifactRow(tenantId, tx), [part]);
    referenced();
    await mayCommit;
  });
  await inside;
  // The publish holds the row (FOR SHARE) and has not committed its reference: the sweep must not wait on it, and
  // must not delete the blob either.
  assert.equal(await ledger.sweep(tenantId, part.sha256), false);
  commit();
  await publishing;
  assert.equal(await ledger.sweep(tenantId, part.sha256), false, 'committed: now the reference keeps it');
  assert.equal(await storage.size(key), part.size);
});

test('a pin taken while a sweep holds the blob waits for it, then starts a fresh row', async () => {
  const { tenantId, part, key } = await storedBlob();
  await ledger.pin(tenantId, 'build-1', [part], 600);
  await lapsePin(tenantId);
  // A sweep in the middle of deleting: it holds the row and has deleted the object, not yet committed.
  const runner = ds.createQueryRunner();
  await runner.connect();
  await runner.startTransaction();
  await runner.query(`SELECT 1 FROM blobs WHERE tenant_id = $1 FOR UPDATE`, [tenantId]);
  await storage.delete(key);
  let pinned = false;
  const pinning = ledger.pin(tenantId, 'build-1', [part], 600).then(() => (pinned = true));
  await new Promise((r) => setTimeout(r, 300));
  assert.equal(pinned, false, 'the pin waits for the sweep');
  await runner.query(`DELETE FROM blobs WHERE tenant_id = $1`, [tenantId]);
  await runner.commitTransaction();
  await runner.release();
  await pinning;
  const [row] = await ds.query<{ pinned: boolean }[]>(
    `SELECT pinned_until > now() AS pinned FROM blob_pins WHERE tenant_id = $1`,
    [tenantId],
  );
  assert.equal(row.pinned, true, 'the publish now holds a pinned row, and finds the object missing: it copies');
  assert.equal(await storage.size(key), null);
});

test('queued objects are deleted, prefixes included, and a key a live artifact names is kept', async () => {
  const tenantId = randomUUID();
  const plain = `tenants/${tenantId}/versions/${randomUUID()}.portable.pt2`;
  const staged = [`tenants/${tenantId}/staging/b/1`, `tenants/${tenantId}/staging/b/2`];
  const live = `tenants/${tenantId}/manifests/c/${randomUUID()}.json`;
  for (const key of [plain, ...staged, live]) await storage.putBytes(key, Buffer.from('x'));
  await ds.query(
    `INSERT INTO artifacts (tenant_id, cache_key, model_content_hash, target_id, recipe_hash, manifest_key, manifest,
                            size_bytes, manifest_sha256, signature, signing_key_id)
     VALUES ($1, 'c', 'h', 't', 'r', $2, '{}', 1, 's', 'sig', 'key')`,
    [tenantId, live],
  );
  await ds.transaction((tx) =>
    ledger.enqueueDeletions(tx, tenantId, [plain, `tenants/${tenantId}/staging/b/`, live, 'tenants/other/x', '']),
  );
  assert.equal((await ledger.collect(tenantId)).objectsDeleted, 3, 'the other tenant key was never queued');
  assert.deepEqual(await storage.listKeys(`tenants/${tenantId}/`), [live]);
  await ds.query(`DELETE FROM artifacts WHERE tenant_id = $1`, [tenantId]);
  await storage.delete(live);
});
