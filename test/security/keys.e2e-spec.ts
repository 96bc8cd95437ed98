// Attacks on keys (issue 10, item 9; docs/security.md, "Keys"), against the real API, PostgreSQL and S3:
// - a revoked key is refused on the very next request, by the replica that revoked it and by another one, on the
//   framework routes and on the resolver's fast path (both had warm caches, which is what used to keep a revoked
//   key working for 30 s);
// - a rotated key: the old one is refused at once, the new one works;
// - a device token enrolled for model X can neither resolve model Y (by name, by id, through a channel, nor from
//   an answer another token left in the resolver's cache) nor download Y's artifact;
// - the compiled API refuses to start with the default or a short admin token outside local mode.
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { readFile } from 'node:fs/promises';
import { createServer } from 'node:net';
import path from 'node:path';
import { after, before, describe, test } from 'node:test';
import type request from 'supertest';
import { DataSource } from 'typeorm';
import { DEFAULT_ADMIN_TOKEN, loadKilnConfig } from '@kiln/config';
import { kilnDataSourceOptions } from '@kiln/database';
import { AVX512_SERVER_FINGERPRINT } from '@kiln/matching';
import {
  api,
  ApiProcess,
  createTenant,
  fixture,
  REPO_ROOT,
  startApi,
  type TestTenant,
  uploadModel,
} from '../support/kiln-harness.js';

const config = loadKilnConfig();
const admin = { Authorization: `Bearer ${config.KILN_ADMIN_TOKEN}` };
let replica1: ApiProcess;
let replica2: ApiProcess;
let tenant: TestTenant;
let models: Record<'x' | 'y', { modelId: string; versionId: string; contentHash: string }>;

const bearer = (key: string): { Authorization: string } => ({ Authorization: `Bearer ${key}` });
const code = (res: request.Response): string =>
  (res.body as { error?: { code?: string } }).error?.code ?? `no error (HTTP ${res.status})`;
const resolveBody = (model: string): Record<string, unknown> => ({ model, fingerprint: AVX512_SERVER_FINGERPRINT });

async function resolve(app: ApiProcess, key: string, model: string): Promise<request.Response> {
  return api(app).post('/v1/resolve').set(bearer(key)).send(resolveBody(model));
}

/**
 * What another replica answers for a key just revoked or rotated elsewhere, once it refuses it. It hears the change
 * through PostgreSQL's NOTIFY, which arrives within milliseconds of the commit but may arrive after the revoking
 * request has returned: so it gets that delivery time (at most 2 s here), never its cache's TTL (AUTH_CACHE_TTL_MS,
 * a minute). The replica that revoked refuses on the very next request (the callers check that without waiting).
 */
async function onceRefused(request: () => Promise<request.Response>): Promise<request.Response> {
  const deadline = Date.now() + 2000;
  for (;;) {
    const res = await request();
    if (res.status === 401 || Date.now() > deadline) return res;
    await new Promise((r) => setTimeout(r, 20));
  }
}

async function newKey(body: Record<string, unknown>): Promise<{ id: string; key: string }> {
  const res = await api(replica1).post('/v1/keys').set(tenant.auth).send(body).expect(201);
  return res.body as { id: string; key: string };
}

before(async () => {
  // Two API replicas on one database: what one revokes, the other must refuse too.
  replica1 = await startApi();
  replica2 = await startApi();
  tenant = await createTenant(replica1, 'keys');
  const file = await fixture('mlp.pt2');
  const x = await uploadModel(replica1, tenant, 'model-x', file);
  const y = await uploadModel(replica1, tenant, 'model-y', await fixture('cnn.pt2'));
  models = {
    x: { ...x, contentHash: String(x.body.contentHash) },
    y: { ...y, contentHash: String(y.body.contentHash) },
  };
});

after(async () => {
  await replica1?.close();
  await replica2?.close();
});

describe('revocation is immediate on every replica', () => {
  test('a revoked API key gets 401 on the very next request (framework route and resolver fast path)', async () => {
    const victim = await newKey({ name: 'to revoke' });
    // Warm every cache the key could hide in: both replicas, both paths.
    for (const app of [replica1, replica2]) {
      await api(app).get('/v1/models').set(bearer(victim.key)).expect(200);
      assert.equal((await resolve(app, victim.key, 'model-x')).status, 200);
    }
    const revoked = await api(replica1).delete(`/v1/keys/${victim.id}`).set(tenant.auth).expect(200);
    assert.ok((revoked.body as { revokedAt: string | null }).revokedAt);
    for (const app of [replica1, replica2]) {
      const ask = app === replica1 ? (r: () => Promise<request.Response>) => r() : onceRefused;
      const framework = await ask(() => api(app).get('/v1/models').set(bearer(victim.key)));
      assert.deepEqual([framework.status, code(framework)], [401, 'UNAUTHENTICATED']);
      const fastPath = await ask(() => resolve(app, victim.key, 'model-x'));
      assert.deepEqual([fastPath.status, code(fastPath)], [401, 'UNAUTHENTICATED']);
    }
    // The tenant's other key is untouched.
    await api(replica2).get('/v1/models').set(tenant.auth).expect(200);
  });

  test('a device token revoked by the operator is refused at once', async () => {
    const device = await newKey({ kind: 'device', models: ['model-x'] });
    for (const app of [replica1, replica2]) assert.equal((await resolve(app, device.key, 'model-x')).status, 200);
    await api(replica2).delete(`/v1/admin/tenants/${tenant.id}/keys/${device.id}`).set(admin).expect(200);
    assert.equal((await resolve(replica2, device.key, 'model-x')).status, 401);
    assert.equal((await onceRefused(() => resolve(replica1, device.key, 'model-x'))).status, 401);
  });

  test('rotation: the old key is refused at once, the new one works', async () => {
    const old = await newKey({ kind: 'device', models: ['model-x'], name: 'fleet' });
    for (const app of [replica1, replica2]) assert.equal((await resolve(app, old.key, 'model-x')).status, 200);
    const res = await api(replica1).post(`/v1/keys/${old.id}/rotate`).set(tenant.auth).send({}).expect(201);
    const rotated = res.body as { id: string; key: string; kind: string; models: string[]; rotatedFromId: string };
    assert.deepEqual([rotated.kind, rotated.models, rotated.rotatedFromId], ['device', ['model-x'], old.id]);
    assert.notEqual(rotated.key, old.key);
    assert.equal((await resolve(replica1, old.key, 'model-x')).status, 401);
    assert.equal((await onceRefused(() => resolve(replica2, old.key, 'model-x'))).status, 401);
    for (const app of [replica1, replica2]) assert.equal((await resolve(app, rotated.key, 'model-x')).status, 200);
    // A revoked key cannot be rotated into a working one.
    const again = await api(replica1).post(`/v1/keys/${old.id}/rotate`).set(tenant.auth).send({}).expect(409);
    assert.equal(code(again), 'CONFLICT');
  });

  test('rotation with a grace period keeps the old key until it expires', async () => {
    const old = await newKey({ name: 'ci' });
    const res = await api(replica1)
      .post(`/v1/keys/${old.id}/rotate`)
      .set(tenant.auth)
      .send({ graceSeconds: 3600 })
      .expect(201);
    const rotated = res.body as { key: string; previous: { expiresAt: string | null; revokedAt: string | null } };
    assert.equal(rotated.previous.revokedAt, null);
    assert.ok(rotated.previous.expiresAt && Date.parse(rotated.previous.expiresAt) > Date.now());
    await api(replica2).get('/v1/models').set(bearer(old.key)).expect(200);
    await api(replica2).get('/v1/models').set(bearer(rotated.key)).expect(200);
  });

  test('device tokens cannot manage keys', async () => {
    const device = await newKey({ kind: 'device', models: ['*'] });
    const res = await api(replica1).post('/v1/keys').set(bearer(device.key)).send({ name: 'escalate' });
    assert.deepEqual([res.status, code(res)], [403, 'FORBIDDEN']);
  });
});

describe('device tokens reach only the models they are enrolled for', () => {
  test('a device token must be enrolled for models (names, or "*")', async () => {
    const res = await api(replica1).post('/v1/keys').set(tenant.auth).send({ kind: 'device' });
    assert.deepEqual([res.status, code(res)], [400, 'VALIDATION_FAILED']);
  });

  test('a token for model X cannot resolve model Y, by name, id or channel, nor from a cached answer', async () => {
    const onlyX = await newKey({ kind: 'device', models: ['model-x'] });
    const all = await newKey({ kind: 'device', models: ['*'] });
    await api(replica1)
      .put(`/v1/models/${models.y.modelId}/channels/prod`)
      .set(tenant.auth)
      .send({ versionId: models.y.versionId })
      .expect(200);
    // The all-models token resolves Y first, so the identical request is in the fast path's answer cache.
    assert.equal((await resolve(replica1, all.key, 'model-y')).status, 200);
    for (const ref of ['model-y', models.y.modelId, 'model-y@prod']) {
      const res = await resolve(replica1, onlyX.key, ref);
      assert.deepEqual([res.status, code(res)], [403, 'MODEL_NOT_ENROLLED'], ref);
    }
    // The documented route (same service) says the same.
    const viaFramework = await resolve(replica2, onlyX.key, 'model-y');
    assert.deepEqual([viaFramework.status, code(viaFramework)], [403, 'MODEL_NOT_ENROLLED']);
    assert.equal((await resolve(replica1, onlyX.key, 'model-x')).status, 200);
  });

  test("a token for model X cannot download model Y's artifact", async () => {
    const artifactId = await seedArtifact(models.y.contentHash);
    const onlyX = await newKey({ kind: 'device', models: ['model-x'] });
    const onlyY = await newKey({ kind: 'device', models: ['model-y'] });
    const denied = await api(replica1).get(`/v1/artifacts/${artifactId}/download`).set(bearer(onlyX.key));
    assert.deepEqual([denied.status, code(denied)], [403, 'MODEL_NOT_ENROLLED']);
    await api(replica1).get(`/v1/artifacts/${artifactId}/download`).set(bearer(onlyY.key)).expect(200);
  });
});

describe('the admin token', () => {
  test('outside local mode the compiled API refuses to start with the default or a short admin token', async () => {
    for (const token of [DEFAULT_ADMIN_TOKEN, 'short-but-not-default']) {
      const apiProcess = new ApiProcess({
        KILN_LOCAL_MODE: 'false',
        KILN_ADMIN_TOKEN: token,
        KILN_API_PORT: String(await freePort()),
        KILN_API_HOST: '127.0.0.1',
      });
      try {
        assert.equal(await apiProcess.start(), 'exited', `started with admin token "${token}":\n${apiProcess.output}`);
        assert.notEqual(await apiProcess.exited, 0);
        assert.match(apiProcess.output, /Refusing to start: KILN_ADMIN_TOKEN/);
      } finally {
        await apiProcess.stop();
      }
    }
  });

  test('with a long secret it starts (and the default token is then refused); local mode listens on loopback', async () => {
    const secret = createHash('sha256').update(`${Date.now()}`).digest('hex');
    const port = await freePort();
    const production = new ApiProcess({
      KILN_LOCAL_MODE: 'false',
      KILN_ADMIN_TOKEN: secret,
      KILN_API_PORT: String(port),
      KILN_API_HOST: '127.0.0.1',
    });
    try {
      assert.equal(await production.start(), 'listening', production.output);
      const url = `http://127.0.0.1:${port}/v1/admin/tenants`;
      const post = (token: string): Promise<Response> =>
        fetch(url, {
          method: 'POST',
          headers: { Authorization: `Bearer ${token}`, 'Content-Type': 'application/json' },
          body: JSON.stringify({ name: 'admin-check' }),
        });
      assert.equal((await post(DEFAULT_ADMIN_TOKEN)).status, 401);
      assert.equal((await post(secret)).status, 201);
    } finally {
      await production.stop();
    }
    const local = new ApiProcess({
      KILN_LOCAL_MODE: 'true',
      KILN_API_PORT: String(await freePort()),
      KILN_API_HOST: '',
    });
    try {
      assert.equal(await local.start(), 'listening', local.output);
      assert.match(local.output, /API listening on http:\/\/127\.0\.0\.1:\d+ .*in local mode/);
    } finally {
      await local.stop();
    }
  });
});

/** A free TCP port on loopback for an API process of its own. */
async function freePort(): Promise<number> {
  const server = createServer();
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as { port: number };
  await new Promise((resolve) => server.close(resolve));
  return port;
}

/**
 * An artifact row for a model's content (a real manifest of test/fixtures, unsigned), so that its download route
 * can be tried without a 60 s compile: the check under test is who may download it, not what it holds.
 */
async function seedArtifact(modelContentHash: string): Promise<string> {
  const manifest = JSON.parse(
    await readFile(path.join(REPO_ROOT, 'test/fixtures/manifests/cpu/linux-x86_64-v2.json'), 'utf8'),
  ) as { recipeHash: string };
  const cacheKey = createHash('sha256').update(`${tenant.id}/${modelContentHash}/keys-test`).digest('hex');
  const db = new DataSource(kilnDataSourceOptions(config.DATABASE_URL, { logging: false }));
  await db.initialize();
  try {
    const [row] = await db.query<{ id: string }[]>(
      `INSERT INTO artifacts (tenant_id, cache_key, model_content_hash, target_id, recipe_hash, manifest_key, manifest,
                              size_bytes, manifest_sha256, signature, signing_key_id)
       VALUES ($1, $2, $3, 'linux-x86_64-v2', $4, $5, $6, 1000, $7, '', '') RETURNING id`,
      [
        tenant.id,
        cacheKey,
        modelContentHash,
        manifest.recipeHash,
        `tenants/${tenant.id}/manifests/${cacheKey}.json`,
        JSON.stringify(manifest),
        createHash('sha256').update(JSON.stringify(manifest)).digest('hex'),
      ],
    );
    return row.id;
  } finally {
    await db.destroy();
  }
}
