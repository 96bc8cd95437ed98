// UploadsService's rules, in isolation: real PostgreSQL (a throwaway database) and the real S3 of the stack (parts
// are really uploaded through the presigned URLs). Completing into a version is VersionsService's (the .pt2 checks),
// covered by the e2e tests; here the version side is a stub that is never reached.
import assert from 'node:assert/strict';
import { createHash, randomUUID } from 'node:crypto';
import { after, before, test } from 'node:test';
import { KilnConfig, loadKilnConfig } from '@kiln/config';
import { ErrorCode, KilnError } from '@kiln/contracts';
import { objectStorageFor } from '@kiln/core';
import { ModelEntity, ModelVersionEntity, UploadEntity } from '@kiln/database';
import type { ObjectStorage } from '@kiln/storage';
import { QuotasService } from '../fair-use/quotas.service.js';
import { ModelsService } from '../models/models.service.js';
import { createServiceDatabase, seedModel, type ServiceDatabase } from '../testing/service-database.js';
import type { VersionsService } from '../versions/versions.service.js';
import { UploadsService } from './uploads.service.js';

const MiB = 1024 * 1024;
let db: ServiceDatabase;
let storage: ObjectStorage;
let service: UploadsService;

before(async () => {
  db = await createServiceDatabase();
  const { ds } = db;
  storage = objectStorageFor(loadKilnConfig());
  await storage.ensureBucket();
  const config = Object.assign(new KilnConfig(), {
    KILN_MAX_UPLOAD_BYTES: 64 * MiB,
    KILN_UPLOAD_PART_SIZE_BYTES: 5 * MiB,
    KILN_QUOTA_STORED_BYTES: 100 * MiB,
  });
  service = new UploadsService(
    ds.getRepository(UploadEntity),
    new ModelsService(ds.getRepository(ModelEntity), ds.getRepository(ModelVersionEntity)),
    { find: () => Promise.resolve(null) } as unknown as VersionsService,
    storage,
    config,
    new QuotasService(ds, config),
  );
});

after(async () => {
  await db?.destroy();
  storage?.client.destroy();
});

async function refused(p: Promise<unknown>, code: ErrorCode): Promise<void> {
  await assert.rejects(p, (err: unknown) => err instanceof KilnError && err.code === code);
}

const sha256 = (b: Buffer): string => createHash('sha256').update(b).digest('base64');

test('a file is planned in parts; each part URL takes exactly its bytes, and S3 lists what arrived', async () => {
  const m = await seedModel(db.ds, 0);
  const size = 5 * MiB + 123;
  const { upload, created } = await service.create(m.tenantId, m.modelId, { filename: 'a.pt2', sizeBytes: size }, null);
  assert.deepEqual([created, upload.status, upload.partCount, upload.partSize], [true, 'uploading', 2, 5 * MiB]);
  const last = Buffer.alloc(123, 7);
  const urls = await service.partUrls(m.tenantId, upload.uploadId, {
    parts: [{ partNumber: 2, sha256: sha256(last) }],
  });
  assert.deepEqual(
    urls.parts.map((p) => [p.partNumber, p.offset, p.size]),
    [[2, 5 * MiB, 123]],
  );
  const put = (body: Buffer) =>
    fetch(urls.parts[0].url, { method: 'PUT', headers: urls.parts[0].headers, body: new Uint8Array(body) });
  assert.ok(!(await put(Buffer.alloc(123, 8))).ok, 'other bytes than the declared checksum are refused by S3');
  assert.ok((await put(last)).ok);
  const status = await service.get(m.tenantId, upload.uploadId);
  assert.deepEqual(
    status.parts.map((p) => [p.partNumber, p.size]),
    [[2, 123]],
  );
  assert.equal(status.uploadedBytes, 123);
});

test('bad part requests, sizes over the limit, and another tenant are refused', async () => {
  const m = await seedModel(db.ds, 0);
  const other = await seedModel(db.ds, 0);
  await refused(
    service.create(m.tenantId, m.modelId, { filename: 'big.pt2', sizeBytes: 65 * MiB }, null),
    ErrorCode.PAYLOAD_TOO_LARGE,
  );
  await refused(
    service.create(m.tenantId, other.modelId, { filename: 'a.pt2', sizeBytes: 10 }, null),
    ErrorCode.NOT_FOUND,
  );
  const { upload } = await service.create(m.tenantId, m.modelId, { filename: 'a.pt2', sizeBytes: 10 }, null);
  const ok = sha256(Buffer.alloc(10));
  await refused(
    service.partUrls(m.tenantId, upload.uploadId, { parts: [{ partNumber: 2, sha256: ok }] }),
    ErrorCode.VALIDATION_FAILED,
  );
  await refused(
    service.partUrls(m.tenantId, upload.uploadId, { parts: [{ partNumber: 1 }] }),
    ErrorCode.VALIDATION_FAILED,
  );
  await refused(
    service.partUrls(m.tenantId, upload.uploadId, { parts: [{ partNumber: 1, sha256: ok, md5: 'x' }] }),
    ErrorCode.VALIDATION_FAILED,
  );
  await refused(service.get(other.tenantId, upload.uploadId), ErrorCode.UPLOAD_NOT_FOUND);
  await refused(service.abort(other.tenantId, upload.uploadId), ErrorCode.UPLOAD_NOT_FOUND);
});

test('an Idempotency-Key replays its upload, refuses another file, and is released by an abort', async () => {
  const m = await seedModel(db.ds, 0);
  const key = `idem-${randomUUID()}`;
  const body = { filename: 'a.pt2', sizeBytes: 1000 };
  const first = await service.create(m.tenantId, m.modelId, body, key);
  const again = await service.create(m.tenantId, m.modelId, body, key);
  assert.deepEqual([again.created, again.upload.uploadId], [false, first.upload.uploadId]);
  await refused(service.create(m.tenantId, m.modelId, { ...body, sizeBytes: 1001 }, key), ErrorCode.CONFLICT);

  const aborted = await service.abort(m.tenantId, first.upload.uploadId);
  assert.equal(aborted.status, 'aborted');
  assert.equal((await service.abort(m.tenantId, first.upload.uploadId)).status, 'aborted', 'repeating is harmless');
  await refused(
    service.partUrls(m.tenantId, first.upload.uploadId, {
      parts: [{ partNumber: 1, sha256: sha256(Buffer.alloc(1)) }],
    }),
    ErrorCode.UPLOAD_ABORTED,
  );
  const row = await db.ds.getRepository(UploadEntity).findOneByOrFail({ id: first.upload.uploadId });
  assert.equal(await storage.listParts(row.objectKey, row.s3UploadId), null, 'S3 dropped the multipart upload');
  const fresh = await service.create(m.tenantId, m.modelId, body, key);
  assert.deepEqual([fresh.created, fresh.upload.uploadId === first.upload.uploadId], [true, false]);
});

test('past its deadline an upload is expired: no more part URLs, and its key starts afresh', async () => {
  const m = await seedModel(db.ds, 0);
  const key = `idem-${randomUUID()}`;
  const body = { filename: 'a.pt2', sizeBytes: 1000 };
  const { upload } = await service.create(m.tenantId, m.modelId, body, key);
  await db.ds.query(`UPDATE uploads SET expires_at = now() - interval '1 second' WHERE id = $1`, [upload.uploadId]);
  assert.equal((await service.get(m.tenantId, upload.uploadId)).status, 'expired');
  await refused(
    service.partUrls(m.tenantId, upload.uploadId, { parts: [{ partNumber: 1, sha256: sha256(Buffer.alloc(1)) }] }),
    ErrorCode.UPLOAD_EXPIRED,
  );
  const fresh = await service.create(m.tenantId, m.modelId, body, key);
  assert.equal(fresh.created, true);
  assert.equal((await db.ds.getRepository(UploadEntity).findOneByOrFail({ id: upload.uploadId })).status, 'expired');
});
