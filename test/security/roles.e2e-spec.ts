// Issue 16, item 3: roles. The matrix of docs/security.md ("Roles") is read from the document itself, checked to
// list exactly the tenant-key routes of the API's OpenAPI document, and then walked: every route with a key of every
// role. A ✗ must be 403 FORBIDDEN (the guard refuses before anything else runs); a ✓ must not be. Without the
// guard's role check every ✗ answers like a ✓, and a route added without @Roles is refused to everyone (so it
// fails here until the matrix and the code agree).
import assert from 'node:assert/strict';
import { randomUUID } from 'node:crypto';
import { readFile } from 'node:fs/promises';
import path from 'node:path';
import { after, before, describe, test } from 'node:test';
import { api, type ApiProcess, createTenant, REPO_ROOT, startApi, type TestTenant } from '../support/kiln-harness.js';

const ROLES = ['owner', 'developer', 'viewer', 'device'] as const;
type Role = (typeof ROLES)[number];
/** Routes that take no tenant key: public, or the operator's (admin token). */
const NOT_TENANT_ROUTES = (route: string): boolean =>
  route === 'GET /v1/health' || route === 'GET /v1/signing-keys' || route.includes(' /v1/admin/');

let app: ApiProcess;
let tenant: TestTenant;
const keys = {} as Record<Role, string>;

async function matrixFromDocs(): Promise<Map<string, Record<Role, boolean>>> {
  const doc = await readFile(path.join(REPO_ROOT, 'docs/security.md'), 'utf8');
  const section = doc.slice(doc.indexOf('## Roles'), doc.indexOf('## Audit log'));
  const matrix = new Map<string, Record<Role, boolean>>();
  for (const line of section.split('\n')) {
    const m = /^\| `([A-Z]+ \/[^`]+)` \| (.) \| (.) \| (.) \| (.) \|$/.exec(line);
    if (!m) continue;
    assert.ok(!matrix.has(m[1]), `listed twice: ${m[1]}`);
    matrix.set(m[1], Object.fromEntries(ROLES.map((r, i) => [r, m[i + 2] === '✓'])) as Record<Role, boolean>);
  }
  return matrix;
}

function concretePath(template: string): string {
  return template.replace(/\{(\w+)\}/g, (_m, name: string) =>
    name === 'name' ? 'prod' : name === 'targetId' ? 'linux-x86_64-v2' : randomUUID(),
  );
}

before(async () => {
  app = await startApi();
  tenant = await createTenant(app, 'roles');
  keys.owner = tenant.key;
  for (const role of ['developer', 'viewer', 'device'] as const) {
    const res = await api(app)
      .post('/v1/keys')
      .set(tenant.auth)
      .send({ role, name: `${role} key`, ...(role === 'device' ? { models: ['*'] } : {}) })
      .expect(201);
    assert.equal((res.body as { role: string }).role, role);
    keys[role] = (res.body as { key: string }).key;
  }
});

after(async () => {
  await app?.stop();
});

describe('roles', () => {
  test('every route × every role answers as the matrix of docs/security.md says', async () => {
    const matrix = await matrixFromDocs();
    const document = (await api(app).get('/openapi.json').expect(200)).body as {
      paths: Record<string, Record<string, unknown>>;
    };
    const routes = Object.entries(document.paths)
      .flatMap(([p, item]) => Object.keys(item).map((method) => `${method.toUpperCase()} ${p}`))
      .filter((r) => !NOT_TENANT_ROUTES(r))
      .sort();
    assert.deepEqual(routes, [...matrix.keys()].sort(), 'the matrix lists exactly the tenant-key routes');

    const wrong: string[] = [];
    for (const route of routes) {
      const [method, template] = route.split(' ');
      for (const role of ROLES) {
        const url = concretePath(template);
        const verb = method.toLowerCase() as 'get' | 'post' | 'put' | 'patch' | 'delete';
        const client = api(app);
        const res = await client[verb](url)
          .set('Authorization', `Bearer ${keys[role]}`)
          .send(method === 'GET' || method === 'DELETE' ? undefined : {});
        const forbidden = res.status === 403 && (res.body as { error?: { code?: string } }).error?.code === 'FORBIDDEN';
        if (forbidden === matrix.get(route)![role]) {
          wrong.push(`${route} as ${role}: ${res.status} ${JSON.stringify(res.body).slice(0, 160)}`);
        }
      }
    }
    assert.deepEqual(wrong, [], 'answers that disagree with the matrix');
  });

  test('a refusal names the role and what the route admits', async () => {
    const res = await api(app).delete(`/v1/models/${randomUUID()}`).set('Authorization', `Bearer ${keys.developer}`);
    assert.equal(res.status, 403);
    assert.deepEqual((res.body as { error: { details: unknown } }).error.details, {
      role: 'developer',
      allowedRoles: ['owner'],
    });
  });
});

describe('keys: named, listed with their role, given an expiry', () => {
  test('an expiring key works until its expiry, then is refused; owners rename and move expiries', async () => {
    const created = (
      await api(app).post('/v1/keys').set(tenant.auth).send({ role: 'viewer', expiresInSeconds: 60 }).expect(201)
    ).body as { id: string; key: string; expiresAt: string };
    assert.ok(Date.parse(created.expiresAt) > Date.now());
    const viewer = { Authorization: `Bearer ${created.key}` };
    await api(app).get('/v1/models').set(viewer).expect(200);

    const renamed = (
      await api(app)
        .patch(`/v1/keys/${created.id}`)
        .set(tenant.auth)
        .send({ name: 'dashboard reader', expiresAt: new Date(Date.now() + 2000).toISOString() })
        .expect(200)
    ).body as { name: string; role: string };
    assert.equal(renamed.name, 'dashboard reader');
    assert.equal(renamed.role, 'viewer');
    await api(app).get('/v1/models').set(viewer).expect(200);
    await new Promise((r) => setTimeout(r, 2500));
    await api(app).get('/v1/models').set(viewer).expect(401);
    // Expired: it cannot be given a new expiry (create a new key instead).
    await api(app).patch(`/v1/keys/${created.id}`).set(tenant.auth).send({ expiresAt: 'never' }).expect(409);

    const listed = (await api(app).get('/v1/keys').set(tenant.auth).expect(200)).body as {
      id: string;
      role: string;
      name: string;
    }[];
    assert.equal(listed.find((k) => k.id === created.id)?.name, 'dashboard reader');
    assert.ok(
      listed.some((k) => k.role === 'owner'),
      'the initial key is an owner',
    );
  });

  test('bad expiries, and roles that disagree with the kind, are refused with codes', async () => {
    const own = (await api(app).post('/v1/keys').set(tenant.auth).send({ role: 'developer' }).expect(201)).body as {
      id: string;
    };
    const past = await api(app)
      .patch(`/v1/keys/${own.id}`)
      .set(tenant.auth)
      .send({ expiresAt: new Date(Date.now() - 1000).toISOString() })
      .expect(400);
    assert.equal((past.body as { error: { code: string } }).error.code, 'VALIDATION_FAILED');
    await api(app)
      .post('/v1/keys')
      .set(tenant.auth)
      .send({ kind: 'device', role: 'viewer', models: ['*'] })
      .expect(400);
    await api(app).post('/v1/keys').set(tenant.auth).send({ role: 'admin' }).expect(400);
    await api(app).post('/v1/keys').set(tenant.auth).send({ expiresInSeconds: 5 }).expect(400);
    await api(app).patch(`/v1/keys/${own.id}`).set(tenant.auth).send({ expiresAt: 'tomorrow' }).expect(400);
    // Nothing to change is no change (not an empty UPDATE).
    await api(app).patch(`/v1/keys/${own.id}`).set(tenant.auth).send({}).expect(200);
  });

  test('a rotated key keeps its role; a developer cannot manage keys', async () => {
    const dev = (await api(app).post('/v1/keys').set(tenant.auth).send({ role: 'developer' }).expect(201)).body as {
      id: string;
      key: string;
    };
    const rotated = (await api(app).post(`/v1/keys/${dev.id}/rotate`).set(tenant.auth).send({}).expect(201)).body as {
      role: string;
      key: string;
    };
    assert.equal(rotated.role, 'developer');
    const asDev = { Authorization: `Bearer ${rotated.key}` };
    for (const call of [
      api(app).get('/v1/keys').set(asDev),
      api(app).post('/v1/keys').set(asDev).send({ role: 'owner' }),
      api(app).post(`/v1/keys/${dev.id}/rotate`).set(asDev).send({}),
    ]) {
      const res = await call;
      assert.equal(res.status, 403);
    }
    await api(app)
      .post('/v1/models')
      .set(asDev)
      .send({ name: `dev-${Date.now()}` })
      .expect(201);
  });
});
