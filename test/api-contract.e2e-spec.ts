// The API's promises around the pipeline: tenancy, auth, error codes, idempotency, cancellation, a target
// without a worker, and the OpenAPI document. Real stack, real worker (restricted to linux-x86_64-v2, which
// every x86-64 host from v2 up can build; the CUDA target has no worker on a CPU host).
import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import request from 'supertest';
import { loadKilnConfig } from '@kiln/config';
import { AVX2_LAPTOP_FINGERPRINT } from '@kiln/matching';
import {
  api,
  type CompilationBody,
  createTenant,
  fixture,
  startApi,
  type TestTenant,
  uploadModel,
  waitForCompilation,
  WorkerProcess,
  type ApiProcess,
} from './support/kiln-harness.js';

let app: ApiProcess;
let alice: TestTenant;
let bob: TestTenant;
let aliceVersion: string;
let aliceModel: string;
const worker = new WorkerProcess({ KILN_WORKER_TARGETS: 'linux-x86_64-v2' });
/** A target no worker of this test serves, nor any CPU host's worker (it needs an sm90 GPU). */
const UNSERVED = 'linux-x86_64-cuda-sm90';

before(async () => {
  // Builds for a target nobody serves give up quickly here (default: 30 minutes).
  app = await startApi({ KILN_BUILD_WAIT_FOR_WORKER_S: '8' });
  alice = await createTenant(app, 'alice');
  bob = await createTenant(app, 'bob');
  const uploaded = await uploadModel(app, alice, 'alice-transformer', await fixture('transformer.pt2'));
  aliceVersion = uploaded.versionId;
  aliceModel = uploaded.modelId;
  await worker.start();
});

after(async () => {
  await worker.stop();
  await app?.close();
});

const http = (): ReturnType<typeof request> => api(app);
const errorCode = (res: request.Response): string => (res.body as { error: { code: string } }).error.code;

describe('auth and tenancy', () => {
  test('no key, a malformed key and an unknown key are 401 UNAUTHENTICATED', async () => {
    for (const auth of [
      undefined,
      'Bearer nope',
      'Bearer kiln_0123456789ab_AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA',
    ]) {
      const req = http().get('/v1/models');
      const res = await (auth ? req.set('Authorization', auth) : req);
      assert.equal(res.status, 401);
      assert.equal(errorCode(res), 'UNAUTHENTICATED');
    }
  });

  test("another tenant's model, version and compilation are invisible (404, not 403)", async () => {
    assert.equal(errorCode(await http().get(`/v1/models/${aliceModel}`).set(bob.auth).expect(404)), 'NOT_FOUND');
    await http().get(`/v1/versions/${aliceVersion}`).set(bob.auth).expect(404);
    await http().get(`/v1/versions/${aliceVersion}/artifacts`).set(bob.auth).expect(404);
    await http()
      .post(`/v1/versions/${aliceVersion}/compilations`)
      .set(bob.auth)
      .send({ targets: ['linux-x86_64-v3'] })
      .expect(404);
    const bobModels = await http().get('/v1/models').set(bob.auth).expect(200);
    assert.deepEqual(bobModels.body, []);
  });

  test('device tokens can only resolve and download', async () => {
    const res = await http()
      .post(`/v1/admin/tenants/${alice.id}/keys`)
      .set('Authorization', `Bearer ${loadKilnConfig().KILN_ADMIN_TOKEN}`)
      .send({ kind: 'device', models: ['*'] })
      .expect(201);
    const device = (res.body as { key: string }).key;
    const denied = await http().get('/v1/models').set('Authorization', `Bearer ${device}`).expect(403);
    assert.equal(errorCode(denied), 'FORBIDDEN');
  });

  test('the admin endpoints need the operator token', async () => {
    await http().post('/v1/admin/tenants').set(alice.auth).send({ name: 'x' }).expect(401);
  });
});

describe('validation errors carry codes', () => {
  test('unknown fields, bad targets and bad ids', async () => {
    const unknownField = await http()
      .post('/v1/models')
      .set(alice.auth)
      .send({ name: 'ok-name', extra: 1 })
      .expect(400);
    assert.equal(errorCode(unknownField), 'VALIDATION_FAILED');
    const badName = await http().post('/v1/models').set(alice.auth).send({ name: '../etc' }).expect(400);
    assert.equal(errorCode(badName), 'VALIDATION_FAILED');
    const dup = await http().post('/v1/models').set(alice.auth).send({ name: 'alice-transformer' }).expect(409);
    assert.equal(errorCode(dup), 'CONFLICT');
    const unknownTarget = await http()
      .post(`/v1/versions/${aliceVersion}/compilations`)
      .set(alice.auth)
      .send({ targets: ['linux-x86_64-v9'] })
      .expect(400);
    assert.equal(errorCode(unknownTarget), 'UNKNOWN_TARGET');
    const empty = await http()
      .post(`/v1/versions/${aliceVersion}/compilations`)
      .set(alice.auth)
      .send({ targets: [] })
      .expect(400);
    assert.equal(errorCode(empty), 'VALIDATION_FAILED');
    await http().get('/v1/compilations/not-a-uuid').set(alice.auth).expect(404);
    const malformed = await http()
      .post('/v1/models')
      .set(alice.auth)
      .set('Content-Type', 'application/json')
      .send('{"name": ')
      .expect(400);
    assert.equal(errorCode(malformed), 'VALIDATION_FAILED');
  });

  // POST /v1/resolve is served by the fast path in front of Nest; Express routes `/v1/resolve/` (trailing slash) to
  // the documented ResolverController, which the fast path never takes. Both must answer the same bytes.
  test('the resolver answers the same through its fast path and through the Nest route', async () => {
    const fingerprint = AVX2_LAPTOP_FINGERPRINT;
    const bodies = [
      '{not json',
      '',
      '   ',
      '"a string"',
      '42',
      'null',
      '[]',
      '[{"model":"alice-transformer"}]',
      '{}',
      '\uFEFF{}',
      JSON.stringify({ model: 5, fingerprint: 'x' }),
      JSON.stringify({ model: 'alice-transformer', fingerprint, extra: 1 }),
      JSON.stringify({ model: 'alice-transformer', fingerprint, acceptPrecisions: ['int8'] }),
      JSON.stringify({ model: 'alice-transformer', fingerprint, version: 2 ** 40, channel: 'Not A Channel' }),
      JSON.stringify({ model: 'alice\u0000transformer', fingerprint }),
      JSON.stringify({ model: 'alice-transformer', fingerprint: { schemaVersion: 1 } }),
      JSON.stringify({ model: 'alice-transformer', fingerprint, version: 1, channel: 'prod' }),
      JSON.stringify({ model: 'no-such-model', fingerprint }),
      // Valid ones: the same answer (URLs aside: presigned again when a cached answer expires in between).
      JSON.stringify({ model: 'alice-transformer', fingerprint }),
      JSON.stringify({ model: 'alice-transformer', fingerprint, version: null, deviceId: null }),
    ];
    const post = (path: string, body: string) =>
      http().post(path).set(alice.auth).set('Content-Type', 'application/json').send(body);
    const withoutUrls = (text: string): unknown =>
      JSON.parse(text, (key, value: unknown) => (/^(url|manifestUrl|expiresAt)$/.test(key) ? '…' : value));
    for (const body of bodies) {
      const fast = await post('/v1/resolve', body);
      const nest = await post('/v1/resolve/', body);
      assert.equal(nest.status, fast.status, body);
      if (fast.status === 200) assert.deepEqual(withoutUrls(nest.text), withoutUrls(fast.text), body);
      else assert.equal(nest.text, fast.text, body);
    }
  });
});

describe('compilations', () => {
  test('the same Idempotency-Key returns the same compilation; cancel stops it', async () => {
    const first = await http()
      .post(`/v1/versions/${aliceVersion}/compilations`)
      .set(alice.auth)
      .set('Idempotency-Key', 'alice-transformer-v2-once')
      .send({ targets: ['linux-x86_64-v2'] })
      .expect(201);
    const again = await http()
      .post(`/v1/versions/${aliceVersion}/compilations`)
      .set(alice.auth)
      .set('Idempotency-Key', 'alice-transformer-v2-once')
      .send({ targets: ['linux-x86_64-v2'] })
      .expect(200);
    const id = (first.body as CompilationBody).id;
    assert.equal((again.body as CompilationBody).id, id);

    // Cancel while the compiler runs (the transformer takes tens of seconds there), not as the build ends.
    await waitForCompilation(app, alice, id, (c) => c.builds[0].phase === 'compiling', 5 * 60_000);
    await http().post(`/v1/compilations/${id}/cancel`).set(alice.auth).expect(202);
    const done = await waitForCompilation(app, alice, id, undefined, 2 * 60_000);
    assert.equal(done.status, 'cancelled');
    assert.equal(done.builds[0].status, 'cancelled');
    assert.equal(done.builds[0].artifact, null);
    const artifacts = await http().get(`/v1/versions/${aliceVersion}/artifacts`).set(alice.auth).expect(200);
    assert.deepEqual(artifacts.body, []);
    const cancelAgain = await http().post(`/v1/compilations/${id}/cancel`).set(alice.auth).expect(409);
    assert.equal(errorCode(cancelAgain), 'CONFLICT');
  });

  test('a target no worker serves waits for a worker, then fails with NO_WORKER', async () => {
    const res = await http()
      .post(`/v1/versions/${aliceVersion}/compilations`)
      .set(alice.auth)
      .send({ targets: [UNSERVED] })
      .expect(201);
    const id = (res.body as CompilationBody).id;
    const waiting = await waitForCompilation(app, alice, id, (c) => c.builds[0].status !== 'queued', 60_000);
    assert.ok(['waiting_for_worker', 'failed'].includes(waiting.builds[0].status));
    const done = await waitForCompilation(app, alice, id, undefined, 2 * 60_000);
    assert.equal(done.status, 'failed');
    assert.equal(done.builds[0].errorCode, 'NO_WORKER');
    const targets = await http().get('/v1/targets').set(alice.auth).expect(200);
    const online = Object.fromEntries(
      (targets.body as { id: string; workerOnline: boolean }[]).map((t) => [t.id, t.workerOnline]),
    );
    assert.equal(online['linux-x86_64-v2'], true);
    assert.equal(online[UNSERVED], false);
  });
});

test('the OpenAPI document is served and describes the endpoints', async () => {
  const res = await http().get('/openapi.json').expect(200);
  const doc = res.body as { paths: Record<string, unknown> };
  for (const p of [
    '/v1/models',
    '/v1/models/{modelId}/versions',
    '/v1/versions/{versionId}/compilations',
    '/v1/artifacts/{artifactId}/download',
  ]) {
    assert.ok(doc.paths[p], `${p} documented`);
  }
});
