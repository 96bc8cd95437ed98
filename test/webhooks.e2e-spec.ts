// Issue 16, item 5: webhooks, against the compiled API and orchestrator, real PostgreSQL and Temporal, and local
// receivers. A receiver the operator allows (KILN_WEBHOOK_ALLOWED_DESTINATIONS) fails twice, then answers: the one
// delivery arrives three times with the same id and a valid signature, and is visible as delivered after 3 attempts;
// a redelivery sends the same event again. Destinations that are not public are refused: literal private, loopback and
// metadata addresses at registration, a name resolving to loopback when the delivery connects (its receiver never
// hears a thing). A compilation for a target no worker serves emits build.failed and compilation.finished from the
// orchestrator's workflow (a GPU target: no worker of this machine's suite ever polls its queue, so Temporal's
// recent-poller memory of earlier test files cannot keep it waiting).
import assert from 'node:assert/strict';
import { createHmac, timingSafeEqual } from 'node:crypto';
import { createServer, type IncomingHttpHeaders, type Server } from 'node:http';
import { after, before, test } from 'node:test';
import { setTimeout as sleep } from 'node:timers/promises';
import {
  api,
  type ApiProcess,
  createTenant,
  fixture,
  freePort,
  startApi,
  type TestTenant,
  WorkerProcess,
} from './support/kiln-harness.js';

interface Received {
  headers: IncomingHttpHeaders;
  body: string;
}

/** A local webhook receiver: records every request; answers 500 to the first `failFirst`, then 200 "ok". */
class Receiver {
  readonly requests: Received[] = [];
  failFirst = 0;
  private server?: Server;
  port = 0;

  async start(): Promise<void> {
    this.port = await freePort();
    this.server = createServer((req, res) => {
      const chunks: Buffer[] = [];
      req.on('data', (c: Buffer) => chunks.push(c));
      req.on('end', () => {
        this.requests.push({ headers: req.headers, body: Buffer.concat(chunks).toString('utf8') });
        if (this.requests.length <= this.failFirst) res.writeHead(500).end('receiver down');
        else res.writeHead(200).end('ok');
      });
    });
    await new Promise<void>((resolve) => this.server!.listen(this.port, '127.0.0.1', resolve));
  }

  async waitFor(count: number, what: string, timeoutMs = 90_000): Promise<void> {
    const until = Date.now() + timeoutMs;
    while (this.requests.length < count) {
      if (Date.now() > until) throw new Error(`${what}: ${this.requests.length} of ${count} requests arrived`);
      await sleep(200);
    }
  }

  stop(): Promise<void> {
    return new Promise((resolve) => (this.server ? this.server.close(() => resolve()) : resolve()));
  }
}

interface Delivery {
  id: string;
  eventId: string;
  eventType: string;
  status: string;
  attempts: number;
  lastStatusCode: number | null;
  lastError: string | null;
  lastResponseBody: string | null;
}

const allowed = new Receiver();
const forbidden = new Receiver();
let app: ApiProcess;
let orchestrator: WorkerProcess;
let tenant: TestTenant;

before(async () => {
  await allowed.start();
  await forbidden.start();
  const env = {
    KILN_WEBHOOK_ALLOWED_DESTINATIONS: `127.0.0.1:${allowed.port}`,
    KILN_WEBHOOK_RETRY_INITIAL_S: '1',
    KILN_WEBHOOK_MAX_ATTEMPTS: '4',
    KILN_BUILD_WAIT_FOR_WORKER_S: '5',
  };
  app = await startApi(env);
  orchestrator = new WorkerProcess({ ...env, KILN_WORKER_ROLES: 'orchestrator' });
  await orchestrator.start();
  tenant = await createTenant(app, 'webhooks');
});

after(async () => {
  await orchestrator?.stop();
  await app?.stop();
  await allowed.stop();
  await forbidden.stop();
});

async function register(url: string, events: string[], status = 201): Promise<{ id: string; secret: string }> {
  const res = await api(app).post('/v1/webhooks').set(tenant.auth).send({ url, events }).expect(status);
  return res.body as { id: string; secret: string };
}

async function deliveries(webhookId: string): Promise<Delivery[]> {
  return (await api(app).get(`/v1/webhooks/${webhookId}/deliveries`).set(tenant.auth).expect(200)).body as Delivery[];
}

async function waitForDelivery(webhookId: string, done: (d: Delivery[]) => boolean, what: string): Promise<Delivery[]> {
  const until = Date.now() + 90_000;
  for (;;) {
    const list = await deliveries(webhookId);
    if (done(list)) return list;
    if (Date.now() > until) throw new Error(`${what}: ${JSON.stringify(list, null, 2)}`);
    await sleep(300);
  }
}

/** What a receiver does: the HMAC of "<t>.<raw body>" with its secret, compared in constant time, and a fresh t. */
function verifySignature(secret: string, r: Received, toleranceS = 300): boolean {
  const header = String(r.headers['kiln-signature'] ?? '');
  const match = /^t=(\d+),v1=([0-9a-f]{64})$/.exec(header);
  if (!match) return false;
  const expected = createHmac('sha256', secret).update(`${match[1]}.${r.body}`).digest();
  const fresh = Math.abs(Date.now() / 1000 - Number(match[1])) <= toleranceS;
  return fresh && timingSafeEqual(expected, Buffer.from(match[2], 'hex'));
}

test('registration refuses what is not a webhook URL, unknown events, and literal addresses that are not public', async () => {
  for (const url of [
    'not a url',
    'ftp://example.com/hook',
    'http://user:secret@example.com/hook',
    'http://169.254.169.254/latest/meta-data/',
    'http://[fd00:ec2::254]/',
    'http://[::1]:8080/',
    'http://10.1.2.3/hook',
    'http://100.64.0.1/hook',
    `http://127.0.0.1:${forbidden.port}/`,
    'http://0.0.0.0/',
  ]) {
    const res = await api(app)
      .post('/v1/webhooks')
      .set(tenant.auth)
      .send({ url, events: ['channel.moved'] })
      .expect(400);
    assert.equal((res.body as { error: { code: string } }).error.code, 'VALIDATION_FAILED', url);
  }
  for (const events of [[], ['channel.deleted'], 'channel.moved']) {
    await api(app).post('/v1/webhooks').set(tenant.auth).send({ url: 'https://example.com/', events }).expect(400);
  }
  assert.deepEqual((await api(app).get('/v1/webhooks').set(tenant.auth).expect(200)).body, []);
});

test('a channel move is delivered signed, retried after the receiver failed twice, visible, and redelivered', async () => {
  const hook = await register(`http://127.0.0.1:${allowed.port}/kiln`, ['channel.moved']);
  assert.match(hook.secret, /^whsec_/);
  const listed = (await api(app).get('/v1/webhooks').set(tenant.auth).expect(200)).body as Record<string, unknown>[];
  assert.deepEqual(
    listed.map((w) => [w.id, 'secret' in w]),
    [[hook.id, false]],
    'the secret is shown once',
  );

  allowed.failFirst = 2;
  const model = await api(app).post('/v1/models').set(tenant.auth).send({ name: 'hooked' }).expect(201);
  const modelId = (model.body as { id: string }).id;
  const version = await api(app)
    .post(`/v1/models/${modelId}/versions?filename=pair.pt2`)
    .set(tenant.auth)
    .set('Content-Type', 'application/octet-stream')
    .send(await fixture('pair.pt2'))
    .expect(201);
  const versionId = (version.body as { id: string }).id;
  await api(app).put(`/v1/models/${modelId}/channels/prod`).set(tenant.auth).send({ versionId }).expect(200);

  await allowed.waitFor(3, 'three attempts of one delivery');
  const attempts = allowed.requests.slice(0, 3);
  assert.equal(new Set(attempts.map((r) => r.headers['kiln-delivery'])).size, 1, 'one delivery, retried');
  assert.equal(new Set(attempts.map((r) => r.body)).size, 1, 'the same body each time');
  for (const r of attempts) {
    assert.equal(r.headers['kiln-event'], 'channel.moved');
    assert.equal(r.headers['content-type'], 'application/json');
    assert.ok(verifySignature(hook.secret, r), `signed: ${String(r.headers['kiln-signature'])}`);
    assert.ok(!verifySignature('whsec_wrong', r), 'another secret does not verify');
    assert.ok(!verifySignature(hook.secret, { ...r, body: r.body.replace('prod', 'prud') }), 'a changed body fails');
  }
  // A replay: the captured request, checked later than the tolerance allows, is refused by the timestamp.
  assert.ok(!verifySignature(hook.secret, attempts[0], -1));
  const event = JSON.parse(attempts[0].body) as {
    id: string;
    type: string;
    tenantId: string;
    data: Record<string, unknown>;
  };
  assert.equal(event.type, 'channel.moved');
  assert.equal(event.tenantId, tenant.id);
  assert.deepEqual(event.data, {
    modelId,
    channel: 'prod',
    fromVersionId: null,
    toVersionId: versionId,
    toVersion: 1,
    movedByKeyId: event.data.movedByKeyId,
  });

  const [delivered] = await waitForDelivery(hook.id, (d) => d[0]?.status === 'delivered', 'delivered');
  assert.deepEqual(
    [delivered.eventId, delivered.attempts, delivered.lastStatusCode, delivered.lastResponseBody, delivered.lastError],
    [event.id, 3, 200, 'ok', null],
  );

  const again = await api(app)
    .post(`/v1/webhooks/${hook.id}/deliveries/${delivered.id}/redeliver`)
    .set(tenant.auth)
    .expect(201);
  await allowed.waitFor(4, 'the redelivery');
  const redelivered = allowed.requests[3];
  assert.equal(redelivered.headers['kiln-delivery'], (again.body as { id: string }).id);
  assert.equal((JSON.parse(redelivered.body) as { id: string }).id, event.id, 'the same event id');
  assert.ok(verifySignature(hook.secret, redelivered));
  await api(app)
    .post(`/v1/webhooks/${hook.id}/deliveries/${'0'.repeat(8)}-0000-4000-8000-${'0'.repeat(12)}/redeliver`)
    .set(tenant.auth)
    .expect(404);
  await api(app).delete(`/v1/webhooks/${hook.id}`).set(tenant.auth).expect(204);
  await api(app).get(`/v1/webhooks/${hook.id}/deliveries`).set(tenant.auth).expect(404);
});

test('a name that resolves to a loopback address is refused when the delivery connects; nothing reaches it', async () => {
  const hook = await register(`http://localhost:${forbidden.port}/kiln`, ['channel.moved']);
  const model = await api(app).post('/v1/models').set(tenant.auth).send({ name: 'hooked-private' }).expect(201);
  const modelId = (model.body as { id: string }).id;
  const version = await api(app)
    .post(`/v1/models/${modelId}/versions?filename=pair.pt2`)
    .set(tenant.auth)
    .set('Content-Type', 'application/octet-stream')
    .send(await fixture('pair.pt2'))
    .expect(201);
  await api(app)
    .put(`/v1/models/${modelId}/channels/beta`)
    .set(tenant.auth)
    .send({ versionId: (version.body as { id: string }).id })
    .expect(200);
  const [failed] = await waitForDelivery(hook.id, (d) => d[0]?.status === 'failed', 'refused');
  assert.equal(failed.attempts, 1, 'not retried: retrying cannot make it allowed');
  assert.match(failed.lastError ?? '', /loopback/);
  assert.equal(failed.lastStatusCode, null);
  assert.deepEqual(forbidden.requests, []);
});

test('a compilation no worker can build emits build.failed and compilation.finished from the workflow', async () => {
  const hook = await register(`http://127.0.0.1:${allowed.port}/builds`, ['build.failed', 'compilation.finished']);
  const before = allowed.requests.length;
  allowed.failFirst = 0;
  const model = await api(app).post('/v1/models').set(tenant.auth).send({ name: 'hooked-build' }).expect(201);
  const version = await api(app)
    .post(`/v1/models/${(model.body as { id: string }).id}/versions?filename=pair.pt2`)
    .set(tenant.auth)
    .set('Content-Type', 'application/octet-stream')
    .send(await fixture('pair.pt2'))
    .expect(201);
  const compilation = await api(app)
    .post(`/v1/versions/${(version.body as { id: string }).id}/compilations`)
    .set(tenant.auth)
    .send({ targets: ['linux-x86_64-cuda-sm90'] })
    .expect(201);
  const compilationId = (compilation.body as { id: string }).id;
  await allowed.waitFor(before + 2, 'build.failed and compilation.finished');
  const events = allowed.requests
    .slice(before)
    .map((r) => JSON.parse(r.body) as { type: string; data: Record<string, unknown> });
  const failedBuild = events.find((e) => e.type === 'build.failed');
  const finished = events.find((e) => e.type === 'compilation.finished');
  assert.deepEqual(
    [failedBuild?.data.compilationId, failedBuild?.data.target, failedBuild?.data.errorCode],
    [compilationId, 'linux-x86_64-cuda-sm90', 'NO_WORKER'],
  );
  assert.deepEqual([finished?.data.compilationId, finished?.data.status], [compilationId, 'failed']);
  const list = await waitForDelivery(
    hook.id,
    (d) => d.length === 2 && d.every((x) => x.status === 'delivered'),
    'both',
  );
  assert.deepEqual(list.map((d) => d.eventType).sort(), ['build.failed', 'compilation.finished']);
});
