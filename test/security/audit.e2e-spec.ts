// Issue 16, item 4: the audit log. Every mutation that reaches a route is recorded (who: key id and role, what: the
// route, the ids before and after, how it ended, when, from where), readable by owners only, filterable and paged;
// the table is append-only in PostgreSQL itself (a trigger), so not even the application's own connection can
// change or remove a record: the UPDATE and DELETE below fail without the trigger.
import assert from 'node:assert/strict';
import { after, before, test } from 'node:test';
import { DataSource } from 'typeorm';
import { loadKilnConfig } from '@kiln/config';
import { api, type ApiProcess, createTenant, startApi, type TestTenant } from '../support/kiln-harness.js';

interface AuditEvent {
  id: string;
  at: string;
  actor: string;
  keyId: string | null;
  role: string | null;
  action: string;
  targetIds: Record<string, string>;
  resultIds: Record<string, string>;
  status: number;
  errorCode: string | null;
  ip: string;
  userAgent: string;
}
interface Page {
  events: AuditEvent[];
  nextCursor: string | null;
}

const db = new DataSource({ type: 'postgres', url: loadKilnConfig().DATABASE_URL });
let app: ApiProcess;
let tenant: TestTenant;
let developer: { id: string; auth: { Authorization: string } };
let modelId: string;

async function page(query: Record<string, string | number>): Promise<Page> {
  return (await api(app).get('/v1/audit-events').query(query).set(tenant.auth).expect(200)).body as Page;
}

before(async () => {
  await db.initialize();
  app = await startApi();
  tenant = await createTenant(app, 'audit');
  const dev = (await api(app).post('/v1/keys').set(tenant.auth).send({ role: 'developer', name: 'ci' }).expect(201))
    .body as { id: string; key: string };
  developer = { id: dev.id, auth: { Authorization: `Bearer ${dev.key}` } };
  const name = `audited-${Date.now()}`;
  modelId = (
    (await api(app).post('/v1/models').set(developer.auth).set('User-Agent', 'audit-test/1').send({ name }).expect(201))
      .body as { id: string }
  ).id;
  await api(app).post('/v1/models').set(developer.auth).send({ name }).expect(409);
  await api(app).get(`/v1/models/${modelId}`).set(developer.auth).expect(200);
  await api(app).delete(`/v1/models/${modelId}`).set(tenant.auth).expect(200);
});

after(async () => {
  await app?.stop();
  await db.destroy();
});

test('every mutation is recorded: who, key, role, what, ids before and after, outcome, when, from where', async () => {
  const { events } = await page({});
  const actions = events.map((e) => `${e.action} ${e.status}`);
  assert.deepEqual(actions, [
    'DELETE /v1/models/:modelId 200',
    'POST /v1/models 409',
    'POST /v1/models 201',
    'POST /v1/keys 201',
    'POST /v1/admin/tenants 201',
  ]);
  const [deleted, conflict, created, key, tenantCreated] = events;
  assert.equal(created.keyId, developer.id);
  assert.equal(created.role, 'developer');
  assert.equal(created.actor, 'key');
  assert.equal(created.resultIds.id, modelId, 'after: the id the answer named');
  assert.equal(created.userAgent, 'audit-test/1');
  assert.match(created.ip, /127\.0\.0\.1|::1/);
  assert.ok(Date.now() - Date.parse(created.at) < 120_000);
  assert.equal(conflict.errorCode, 'CONFLICT');
  assert.deepEqual(deleted.targetIds, { modelId }, 'before: the ids the request named');
  assert.equal(deleted.role, 'owner');
  assert.equal(key.resultIds.id, developer.id);
  assert.equal(tenantCreated.actor, 'admin', "the operator's calls about the tenant are in its log");
  assert.equal(tenantCreated.keyId, null);
  assert.ok(!JSON.stringify(events).includes('kiln_'), 'no key secret or prefix is recorded');
});

test('filters (key, action, id, time) and pages that add up to the whole log', async () => {
  assert.deepEqual(
    (await page({ keyId: developer.id })).events.map((e) => e.status),
    [409, 201],
  );
  assert.deepEqual(
    (await page({ action: 'DELETE' })).events.map((e) => e.action),
    ['DELETE /v1/models/:modelId'],
  );
  assert.deepEqual(
    (await page({ targetId: modelId })).events.map((e) => e.action),
    ['DELETE /v1/models/:modelId', 'POST /v1/models'],
  );
  assert.deepEqual((await page({ since: new Date(Date.now() + 60_000).toISOString() })).events, []);

  const all = (await page({})).events.map((e) => e.id);
  const walked: string[] = [];
  let cursor: string | null = null;
  do {
    const p: Page = await page({ limit: 1, ...(cursor ? { cursor } : {}) });
    walked.push(...p.events.map((e) => e.id));
    cursor = p.nextCursor;
  } while (cursor);
  assert.deepEqual(walked, all);
  const bad = await api(app).get('/v1/audit-events').query({ cursor: 'bm9wZQ' }).set(tenant.auth).expect(400);
  assert.equal((bad.body as { error: { code: string } }).error.code, 'VALIDATION_FAILED');
  // A cursor or a date PostgreSQL cannot take is the client's error, not a 500.
  const forged = Buffer.from(`2026-01-01T00:00:00.000Z|${'-'.repeat(36)}`).toString('base64url');
  await api(app).get('/v1/audit-events').query({ cursor: forged }).set(tenant.auth).expect(400);
  await api(app).get('/v1/audit-events').query({ since: '0000-01-01T00:00:00Z' }).set(tenant.auth).expect(400);
});

test('only owners read it; another tenant sees none of it', async () => {
  await api(app).get('/v1/audit-events').set(developer.auth).expect(403);
  const other = await createTenant(app, 'audit-other');
  const theirs = (await api(app).get('/v1/audit-events').set(other.auth).expect(200)).body as Page;
  assert.deepEqual(
    theirs.events.map((e) => e.action),
    ['POST /v1/admin/tenants'],
    'its own creation, nothing of the first tenant',
  );
});

test('append-only: a record cannot be changed or removed, not even by the database user of the API', async () => {
  const [{ id }] = (await page({ limit: 1 })).events;
  await assert.rejects(db.query(`UPDATE audit_events SET status = 200 WHERE id = $1`, [id]), /append-only/);
  await assert.rejects(db.query(`DELETE FROM audit_events WHERE id = $1`, [id]), /append-only/);
  await assert.rejects(db.query(`TRUNCATE audit_events`), /append-only/);
  assert.equal((await page({ limit: 1 })).events[0].id, id);
});
