// kill -9 of the build worker in the middle of a compile: the build's heartbeat stops, Temporal retries it
// on the restarted worker, the build finishes, and there is exactly one artifact (one row, one manifest,
// each part stored once).
import assert from 'node:assert/strict';
import { after, before, test } from 'node:test';
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
} from './support/kiln-harness.js';

let app: ApiProcess;
let tenant: TestTenant;
const worker = new WorkerProcess();
const s3 = storage();

before(async () => {
  app = await startApi();
  tenant = await createTenant(app, 'crash');
  await worker.start();
});

after(async () => {
  await worker.stop();
  await app?.close();
  s3.client.destroy();
});

test('a worker killed mid-compile: the build is retried, finishes, and yields exactly one artifact', async () => {
  const { versionId } = await uploadModel(app, tenant, 'crash-cnn', await fixture('cnn.pt2'));
  const created = await api(app)
    .post(`/v1/versions/${versionId}/compilations`)
    .set(tenant.auth)
    .send({ targets: ['linux-x86_64-v2'] }) // every x86-64 host from v2 up builds v2
    .expect(201);
  const id = (created.body as CompilationBody).id;

  const compiling = await waitForCompilation(
    app,
    tenant,
    id,
    (c) => c.builds[0].status === 'running' && c.builds[0].phase === 'compiling',
    5 * 60_000,
  );
  assert.equal(compiling.builds[0].attempt, 1);
  worker.kill9();
  await worker.start();

  const done = await waitForCompilation(app, tenant, id);
  const build = done.builds[0];
  assert.equal(done.status, 'succeeded', JSON.stringify(done, null, 2));
  assert.ok(build.attempt >= 2, `the build was retried (attempt ${build.attempt})`);

  const artifacts = await api(app).get(`/v1/versions/${versionId}/artifacts`).set(tenant.auth).expect(200);
  const list = artifacts.body as { id: string; parts: { sha256: string }[] }[];
  assert.equal(list.length, 1, 'exactly one artifact for the target');
  assert.equal(list[0].id, build.artifact!.id);
  const keys = await s3.listKeys(`tenants/${tenant.id}/`);
  assert.equal(keys.filter((k) => k.includes('/manifests/')).length, 1);
  assert.equal(keys.filter((k) => k.includes('/blobs/')).length, list[0].parts.length);
});
