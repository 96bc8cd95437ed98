// Issue 16, item 1: delete and garbage collection, against the compiled API and orchestrator, real PostgreSQL,
// Temporal and S3.
//
// Two models of one tenant share a content-addressed blob. Builds are run by a build host of this test (a Temporal
// worker on the target's queue, as in test/security/build-authority.e2e-spec.ts) so that the race is exact: model B's
// build is told the shared blob is "already stored" (so it uploads only its own part) and is held there while model A
// is deleted and its tenant collected. Then B's build goes on and publishes, skipping the copy of the shared blob.
// Without the grant's pin the collector deletes the shared blob and B's publish fails (the blob is neither stored nor
// staged); without the deletes, A's rows and objects stay. Afterwards the bucket and every table are listed: nothing
// of A remains, B is whole.
import assert from 'node:assert/strict';
import { createHash, randomBytes } from 'node:crypto';
import { readFile } from 'node:fs/promises';
import path from 'node:path';
import { after, before, test } from 'node:test';
import { Context } from '@temporalio/activity';
import { Client, Connection } from '@temporalio/client';
import { NativeConnection, Worker } from '@temporalio/worker';
import { DataSource } from 'typeorm';
import { loadKilnConfig } from '@kiln/config';
import type { ArtifactManifest } from '@kiln/contracts';
import { objectKeys } from '@kiln/storage';
import { findTarget, recipeHash, taskQueueFor } from '@kiln/targets';
import {
  BUILD_MODEL_UPDATE,
  BUILD_UPLOADS_UPDATE,
  type BuildModelGrant,
  type BuildTargetInput,
  type BuildTargetResult,
  type BuildUploadsGrant,
} from '@kiln/temporal';
import {
  api,
  type ApiProcess,
  createTenant,
  fixture,
  REPO_ROOT,
  startApi,
  storage,
  type TestTenant,
  uploadModel,
  waitForCompilation,
  WorkerProcess,
} from './support/kiln-harness.js';

const TARGET = 'linux-x86_64-v2';
const config = loadKilnConfig();
const s3 = storage();
const db = new DataSource({ type: 'postgres', url: config.DATABASE_URL });
const orchestrator = new WorkerProcess({ KILN_WORKER_ROLES: 'orchestrator' });

let app: ApiProcess;
let tenant: TestTenant;
let nativeConnection: NativeConnection;
let connection: Connection;
let client: Client;
let host: Worker;
let hostRunning: Promise<void>;
let template: ArtifactManifest;
/**
 * What the test's build host does with a build, by model version (taken once: a retry, or a build of an earlier run
 * still in Temporal, finds nothing planned and fails).
 */
/** Lets a held build go on (also when a test failed while holding it, so that the run ends). */
let releaseHeld: () => void = () => undefined;
const plannedBuilds = new Map<string, (input: BuildTargetInput) => Promise<BuildTargetResult>>();

function part(bytes: Buffer): { bytes: Buffer; sha256: string; size: number } {
  return { bytes, sha256: createHash('sha256').update(bytes).digest('hex'), size: bytes.length };
}

async function ask<R>(update: string, arg: unknown): Promise<R> {
  const { workflowId } = Context.current().info.workflowExecution!;
  return client.workflow.getHandle(workflowId).executeUpdate<R, [unknown]>(update, { args: [arg] });
}

/**
 * An honest build of `parts` (a code part and a weights part): asks for upload URLs the way a real build host does,
 * uploads what the grant says is not stored yet, then waits for `goOn` before handing back its manifest.
 */
function honestBuild(
  parts: { code: ReturnType<typeof part>; weights: ReturnType<typeof part> },
  granted: (grant: BuildUploadsGrant) => void = () => undefined,
  goOn: Promise<void> = Promise.resolve(),
): (input: BuildTargetInput) => Promise<BuildTargetResult> {
  return async (input) => {
    const model = await ask<BuildModelGrant>(BUILD_MODEL_UPDATE, { buildId: input.buildId });
    const t = findTarget(input.targetId)!;
    const listed = [parts.code, parts.weights];
    const grant = await ask<BuildUploadsGrant>(BUILD_UPLOADS_UPDATE, {
      buildId: input.buildId,
      parts: listed.map(({ sha256, size }) => ({ sha256, size })),
    });
    for (const upload of grant.uploads) {
      const body = listed.find((p) => p.sha256 === upload.sha256)!.bytes;
      const res = await fetch(upload.url, { method: 'PUT', headers: upload.headers, body });
      assert.ok(res.ok, `staging upload: ${res.status}`);
    }
    granted(grant);
    await goOn;
    return {
      log: 'test build host',
      manifest: {
        ...template,
        tenantId: input.tenantId,
        target: t.id,
        recipeHash: recipeHash(t.recipe),
        modelContentHash: model.contentHash,
        cacheKey: input.cacheKey,
        precision: t.recipe.precision ?? 'fp32',
        requires: { ...template.requires, x86Level: t.requires.x86Level, computeCapability: null },
        parts: [
          { role: 'code', sha256: parts.code.sha256, size: parts.code.size },
          { role: 'weights', sha256: parts.weights.sha256, size: parts.weights.size, entry: 'model/weights.blob' },
        ] as ArtifactManifest['parts'],
      },
    };
  };
}

async function compile(versionId: string): Promise<string> {
  const res = await api(app)
    .post(`/v1/versions/${versionId}/compilations`)
    .set(tenant.auth)
    .send({ targets: [TARGET] })
    .expect(201);
  return (res.body as { id: string }).id;
}

/** Every row of every table of the database but the audit log, as text, that mentions one of `needles`. */
async function rowsMentioning(needles: string[], ofTenant?: string): Promise<string[]> {
  const tables = await db.query<{ name: string }[]>(
    `SELECT c.relname AS name FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
      WHERE n.nspname = 'public' AND c.relkind IN ('r', 'p') AND NOT c.relispartition
        AND c.relname <> 'audit_events'`,
  );
  const found: string[] = [];
  for (const { name } of tables) {
    const rows = await db.query<{ row: string }[]>(`SELECT row_to_json(t)::text AS row FROM "${name}" t`);
    for (const { row } of rows) {
      if (ofTenant && !row.includes(ofTenant)) continue;
      if (needles.some((n) => row.includes(n))) found.push(`${name}: ${row.slice(0, 300)}`);
    }
  }
  return found;
}

before(async () => {
  template = JSON.parse(
    await readFile(path.join(REPO_ROOT, 'test/fixtures/manifests/cpu/linux-x86_64-v2.json'), 'utf8'),
  ) as ArtifactManifest;
  await db.initialize();
  app = await startApi();
  await orchestrator.start();
  tenant = await createTenant(app, 'retention');
  nativeConnection = await NativeConnection.connect({ address: config.TEMPORAL_ADDRESS });
  connection = await Connection.connect({ address: config.TEMPORAL_ADDRESS });
  client = new Client({ connection, namespace: config.TEMPORAL_NAMESPACE });
  host = await Worker.create({
    connection: nativeConnection,
    namespace: config.TEMPORAL_NAMESPACE,
    taskQueue: taskQueueFor(TARGET),
    activities: {
      buildTarget: async (input: BuildTargetInput) => {
        const build = plannedBuilds.get(input.modelVersionId);
        plannedBuilds.delete(input.modelVersionId);
        if (!build) throw new Error('no build planned');
        return build(input);
      },
    },
  });
  hostRunning = host.run();
});

after(async () => {
  releaseHeld();
  host?.shutdown();
  await hostRunning;
  await nativeConnection?.close();
  await connection?.close();
  await orchestrator.stop();
  await app?.stop();
  await db.destroy();
  s3.client.destroy();
});

test('deleting a model leaves nothing of it behind, while a concurrent build of another model keeps the blob they share', async () => {
  const shared = part(randomBytes(4096));
  const codeA = part(randomBytes(2048));
  const codeB = part(randomBytes(2048));
  const a = await uploadModel(app, tenant, 'retention-a', await fixture('mlp.pt2'));
  const b = await uploadModel(app, tenant, 'retention-b', await fixture('cnn.pt2'));

  plannedBuilds.set(a.versionId, honestBuild({ code: codeA, weights: shared }));
  const compilationA = await waitForCompilation(app, tenant, await compile(a.versionId));
  assert.equal(compilationA.status, 'succeeded', JSON.stringify(compilationA, null, 2));
  const artifactA = compilationA.builds[0].artifact!.id;
  const cacheKeyA = (
    (await api(app).get(`/v1/artifacts/${artifactA}`).set(tenant.auth).expect(200)).body as {
      cacheKey: string;
    }
  ).cacheKey;
  await api(app)
    .put(`/v1/models/${a.modelId}/channels/prod`)
    .set(tenant.auth)
    .send({ versionId: a.versionId })
    .expect(200);

  // B's build: told the shared blob is stored, it uploads only its code part, and waits.
  let grantedB!: (grant: BuildUploadsGrant) => void;
  const grantB = new Promise<BuildUploadsGrant>((resolve) => (grantedB = resolve));
  plannedBuilds.set(
    b.versionId,
    honestBuild({ code: codeB, weights: shared }, grantedB, new Promise<void>((resolve) => (releaseHeld = resolve))),
  );
  const compilationB = await compile(b.versionId);
  const grant = await grantB;
  assert.deepEqual(grant.stored, [shared.sha256], 'the shared blob was already stored: B does not upload it');

  // A channel points at A: refused with a code, unless forced.
  const refused = await api(app).delete(`/v1/models/${a.modelId}`).set(tenant.auth).expect(409);
  assert.equal((refused.body as { error: { code: string } }).error.code, 'RESOURCE_IN_USE');
  assert.equal(
    (refused.body as { error: { details: { channels: { name: string }[] } } }).error.details.channels[0].name,
    'prod',
  );
  await api(app).get(`/v1/models/${a.modelId}`).set(tenant.auth).expect(200);

  const deleted = (await api(app).delete(`/v1/models/${a.modelId}?force=true`).set(tenant.auth).expect(200)).body as {
    deleted: Record<string, number>;
    collected: { objectsDeleted: number; blobsDeleted: number };
  };
  assert.deepEqual(deleted.deleted, {
    models: 1,
    versions: 1,
    artifacts: 1,
    channels: 1,
    rollouts: 0,
    compilations: 1,
  });
  assert.equal(deleted.collected.blobsDeleted, 1, "A's own code blob went; the shared one is pinned by B's build");
  assert.equal(await s3.size(objectKeys.blob(tenant.id, codeA.sha256)), null);
  assert.equal(await s3.size(objectKeys.blob(tenant.id, shared.sha256)), shared.size);

  // B goes on: it publishes with the shared blob it never uploaded.
  releaseHeld();
  const doneB = await waitForCompilation(app, tenant, compilationB);
  assert.equal(doneB.status, 'succeeded', JSON.stringify(doneB, null, 2));
  const artifactB = doneB.builds[0].artifact!.id;
  const download = (await api(app).get(`/v1/artifacts/${artifactB}/download`).set(tenant.auth).expect(200)).body as {
    parts: { sha256: string; url: string }[];
  };
  for (const p of download.parts) {
    const bytes = Buffer.from(await (await fetch(p.url)).arrayBuffer());
    assert.equal(createHash('sha256').update(bytes).digest('hex'), p.sha256, 'every part of B downloads intact');
  }

  await api(app).delete(`/v1/models/${a.modelId}`).set(tenant.auth).expect(404);

  // The bucket: only B's objects are left of this tenant.
  const keys = (await s3.listKeys(`tenants/${tenant.id}/`)).sort();
  const manifestB = (
    (await api(app).get(`/v1/artifacts/${artifactB}`).set(tenant.auth).expect(200)).body as {
      cacheKey: string;
    }
  ).cacheKey;
  for (const key of keys) {
    assert.ok(!key.includes(a.versionId) && !key.includes(cacheKeyA), `an object of A remains: ${key}`);
  }
  assert.deepEqual(
    keys.filter((k) => k.includes('/blobs/')),
    [objectKeys.blob(tenant.id, codeB.sha256), objectKeys.blob(tenant.id, shared.sha256)].sort(),
  );
  assert.ok(keys.some((k) => k.includes(`/manifests/${manifestB}/`)));
  assert.ok(keys.some((k) => k.includes(b.versionId)));

  // The tables: no row anywhere mentions A's model, version, compilation, artifact or content.
  const contentHashA = (a.body as { contentHash: string }).contentHash;
  assert.match(contentHashA, /^[0-9a-f]{64}$/);
  assert.deepEqual(
    await rowsMentioning([a.modelId, a.versionId, artifactA, compilationA.id, cacheKeyA, codeA.sha256]),
    [],
  );
  // The fixture's content is other tenants' too (earlier runs): in this tenant's rows it is gone.
  assert.deepEqual(await rowsMentioning([contentHashA], tenant.id), []);
  assert.notDeepEqual(await rowsMentioning([b.versionId]), [], 'B is whole');
  // Beyond the audit record: the delete is there, with the id it removed.
  const audit = (await api(app).get('/v1/audit-events').query({ targetId: a.modelId }).set(tenant.auth).expect(200))
    .body as { events: { action: string; status: number }[] };
  const deletes = audit.events.map((e) => `${e.action} ${e.status}`).filter((e) => e.startsWith('DELETE'));
  assert.deepEqual(deletes, [
    'DELETE /v1/models/:modelId 404',
    'DELETE /v1/models/:modelId 200',
    'DELETE /v1/models/:modelId 409',
  ]);
});

test('a version or an artifact is refused while a channel points at it; an artifact forced goes alone', async () => {
  const shared = part(randomBytes(1024));
  const m = await uploadModel(app, tenant, 'retention-c', await fixture('transformer.pt2'));
  plannedBuilds.set(m.versionId, honestBuild({ code: part(randomBytes(512)), weights: shared }));
  const done = await waitForCompilation(app, tenant, await compile(m.versionId));
  assert.equal(done.status, 'succeeded', JSON.stringify(done, null, 2));
  const artifactId = done.builds[0].artifact!.id;
  await api(app)
    .put(`/v1/models/${m.modelId}/channels/prod`)
    .set(tenant.auth)
    .send({ versionId: m.versionId })
    .expect(200);

  for (const url of [`/v1/versions/${m.versionId}`, `/v1/artifacts/${artifactId}`]) {
    const res = await api(app).delete(url).set(tenant.auth).expect(409);
    assert.equal((res.body as { error: { code: string } }).error.code, 'RESOURCE_IN_USE', url);
  }
  await api(app).delete(`/v1/artifacts/${artifactId}?force=nope`).set(tenant.auth).expect(400);

  const forced = (await api(app).delete(`/v1/artifacts/${artifactId}?force=true`).set(tenant.auth).expect(200))
    .body as {
    deleted: Record<string, number>;
    collected: { blobsDeleted: number };
  };
  assert.equal(forced.deleted.artifacts, 1);
  assert.equal(forced.deleted.channels, 0, 'the channel points at the version, which stays');
  assert.equal(forced.collected.blobsDeleted, 2);
  await api(app).get(`/v1/artifacts/${artifactId}`).set(tenant.auth).expect(404);
  const channels = (await api(app).get(`/v1/models/${m.modelId}/channels`).set(tenant.auth).expect(200))
    .body as unknown[];
  assert.equal(channels.length, 1);
  assert.equal(await s3.size(objectKeys.blob(tenant.id, shared.sha256)), null);

  await api(app).delete(`/v1/versions/${m.versionId}?force=true`).set(tenant.auth).expect(200);
  await api(app).get(`/v1/versions/${m.versionId}`).set(tenant.auth).expect(404);
  assert.deepEqual((await api(app).get(`/v1/models/${m.modelId}/channels`).set(tenant.auth).expect(200)).body, []);
  assert.deepEqual(
    (await s3.listKeys(`tenants/${tenant.id}/versions/`)).filter((k) => k.includes(m.versionId)),
    [],
    "the version's objects are gone",
  );
});
