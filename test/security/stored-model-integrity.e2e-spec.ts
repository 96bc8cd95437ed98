// Attack test for issue 10, item 4: the build worker must not compile whatever sits at a version's key in S3.
// Someone with write access to the bucket swaps a version's stored archive for another, perfectly valid model;
// the build must fail with MODEL_INTEGRITY_MISMATCH, at once (not retried), before the compile driver sees it.
// Real stack: API in process, a real build worker process, SeaweedFS, the real compiler for the control build.
import assert from 'node:assert/strict';
import { arch } from 'node:os';
import { after, before, describe, test } from 'node:test';
import { objectKeys } from '@kiln/storage';
import {
  api,
  type CompilationBody,
  createTenant,
  fixture,
  startApi,
  storage,
  type TestTenant,
  uploadModel,
  waitForCompilation,
  WorkerProcess,
  type ApiProcess,
} from '../support/kiln-harness.js';

// The baseline x86 target: any x86-64 build host can build and run it.
const TARGET = 'linux-x86_64-v2';
const isX86 = arch() === 'x64';

let app: ApiProcess;
let tenant: TestTenant;
const s3 = storage();
const worker = new WorkerProcess({ KILN_WORKER_TARGETS: TARGET });

before(async () => {
  app = await startApi();
  tenant = await createTenant(app, 'integrity');
  if (isX86) await worker.start();
});

after(async () => {
  await worker.stop();
  await app?.close();
  s3.client.destroy();
});

async function compile(versionId: string): Promise<CompilationBody> {
  const res = await api(app)
    .post(`/v1/versions/${versionId}/compilations`)
    .set(tenant.auth)
    .send({ targets: [TARGET] })
    .expect(201);
  return waitForCompilation(app, tenant, (res.body as CompilationBody).id);
}

describe('the worker verifies the stored model against the sha256 recorded at upload', () => {
  test('an object swapped in S3 for another valid model fails the build with MODEL_INTEGRITY_MISMATCH', async (t) => {
    if (!isX86) {
      t.skip(`needs an x86-64 build host for ${TARGET} (this is ${arch()})`);
      return;
    }
    const genuine = await uploadModel(app, tenant, 'genuine', await fixture('mlp.pt2'));
    const victim = await uploadModel(app, tenant, 'victim', await fixture('pair.pt2'));
    // The attacker's bytes: another tenant-valid archive (the genuine model's stored object), not corrupt at all.
    const swapped = await s3.getStream(objectKeys.portableModel(tenant.id, genuine.versionId));
    const chunks: Buffer[] = [];
    for await (const chunk of swapped) chunks.push(chunk as Buffer);
    await s3.putBytes(objectKeys.portableModel(tenant.id, victim.versionId), Buffer.concat(chunks));

    const done = await compile(victim.versionId);
    assert.equal(done.status, 'failed', JSON.stringify(done, null, 2));
    const [build] = done.builds;
    assert.equal(build.errorCode, 'MODEL_INTEGRITY_MISMATCH', `${build.errorCode}: ${build.errorMessage}`);
    assert.match(build.errorMessage ?? '', /not the model that was validated/);
    // Not retried: the same bytes would come back.
    assert.equal(build.attempt, 1);
    assert.equal(build.artifact, null);
  });

  test('the genuine stored object passes the check and compiles', async (t) => {
    if (!isX86) {
      t.skip(`needs an x86-64 build host for ${TARGET} (this is ${arch()})`);
      return;
    }
    const versions = await api(app).get('/v1/models').set(tenant.auth).expect(200);
    const model = (versions.body as { id: string; name: string }[]).find((m) => m.name === 'genuine');
    assert.ok(model, 'the genuine model from the previous test');
    const list = await api(app).get(`/v1/models/${model.id}/versions`).set(tenant.auth).expect(200);
    const [version] = list.body as { id: string }[];
    const done = await compile(version.id);
    assert.equal(done.status, 'succeeded', JSON.stringify(done, null, 2));
    assert.ok(done.builds[0].artifact?.id);
  });
});
