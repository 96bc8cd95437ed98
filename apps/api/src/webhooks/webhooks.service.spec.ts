// WebhooksService's rules, in isolation: real PostgreSQL (a throwaway database), the delivery dispatcher a recorder.
import assert from 'node:assert/strict';
import { randomUUID } from 'node:crypto';
import { after, before, test } from 'node:test';
import { KilnConfig } from '@kiln/config';
import { ErrorCode, KilnError } from '@kiln/contracts';
import type { WebhookEmitter } from '@kiln/core';
import { WebhookDeliveryEntity, WebhookEndpointEntity } from '@kiln/database';
import { createServiceDatabase, seedModel, type ServiceDatabase } from '../testing/service-database.js';
import { WebhooksService } from './webhooks.service.js';

let db: ServiceDatabase;
let service: WebhooksService;
const dispatched: string[] = [];

before(async () => {
  db = await createServiceDatabase();
  const emitter = {
    dispatch: (deliveryId: string) => {
      dispatched.push(deliveryId);
      return Promise.resolve();
    },
  } as unknown as WebhookEmitter;
  const config = Object.assign(new KilnConfig(), { KILN_WEBHOOK_ALLOWED_DESTINATIONS: ['10.9.8.7:8080'] });
  service = new WebhooksService(
    db.ds.getRepository(WebhookEndpointEntity),
    db.ds.getRepository(WebhookDeliveryEntity),
    emitter,
    config,
  );
});

after(async () => {
  await db?.destroy();
});

async function refused(p: Promise<unknown>, code: ErrorCode): Promise<void> {
  await assert.rejects(p, (err: unknown) => err instanceof KilnError && err.code === code);
}

test('a URL is refused for its scheme, credentials or a literal address that is not public, unless allowed', async () => {
  const { tenantId } = await seedModel(db.ds, 0);
  for (const url of [
    'gopher://example.com/',
    'https://a:b@example.com/',
    'http://127.0.0.1/',
    'http://[::ffff:127.0.0.1]/',
    'http://169.254.169.254/',
    'http://192.168.1.1/',
    'http://10.9.8.7:8081/',
    'http://[fe80::1]/',
  ]) {
    await refused(service.create(tenantId, { url, events: ['build.failed'] }), ErrorCode.VALIDATION_FAILED);
  }
  const allowed = await service.create(tenantId, { url: 'http://10.9.8.7:8080/hook', events: ['build.failed'] });
  const named = await service.create(tenantId, {
    url: 'https://hooks.example.com/kiln',
    events: ['channel.moved', 'channel.moved'],
  });
  assert.deepEqual(named.events, ['channel.moved'], 'an event named twice is stored once');
  assert.match(allowed.secret, /^whsec_[A-Za-z0-9_-]{43}$/);
  assert.notEqual(allowed.secret, named.secret);
  const listed = await service.list(tenantId);
  assert.deepEqual(
    listed.map((w) => w.id),
    [allowed.id, named.id],
  );
  assert.ok(
    listed.every((w) => !('secret' in w)),
    'the secret is shown once, at creation',
  );
});

test('deliveries are per tenant; a redelivery is a new row with the same event, dispatched once', async () => {
  const mine = await seedModel(db.ds, 0);
  const theirs = await seedModel(db.ds, 0);
  const hook = await service.create(mine.tenantId, { url: 'https://example.com/a', events: ['build.failed'] });
  const eventId = randomUUID();
  const original = await db.ds.getRepository(WebhookDeliveryEntity).save({
    tenantId: mine.tenantId,
    endpointId: hook.id,
    eventId,
    eventType: 'build.failed',
    payload: { id: eventId, type: 'build.failed', data: { target: 'x' } },
  });
  await refused(service.listDeliveries(theirs.tenantId, hook.id), ErrorCode.NOT_FOUND);
  await refused(service.redeliver(theirs.tenantId, hook.id, original.id), ErrorCode.NOT_FOUND);
  await refused(service.redeliver(mine.tenantId, hook.id, randomUUID()), ErrorCode.NOT_FOUND);
  await refused(service.remove(theirs.tenantId, hook.id), ErrorCode.NOT_FOUND);

  const before = dispatched.length;
  const copy = await service.redeliver(mine.tenantId, hook.id, original.id);
  assert.notEqual(copy.id, original.id);
  assert.deepEqual([copy.eventId, copy.status, copy.attempts, copy.payload], [eventId, 'pending', 0, original.payload]);
  assert.deepEqual(dispatched.slice(before), [copy.id]);
  assert.deepEqual(
    (await service.listDeliveries(mine.tenantId, hook.id)).map((d) => d.eventId),
    [eventId, eventId],
  );

  await service.remove(mine.tenantId, hook.id);
  assert.equal(await db.ds.getRepository(WebhookDeliveryEntity).countBy({ endpointId: hook.id }), 0);
  await refused(service.remove(mine.tenantId, hook.id), ErrorCode.NOT_FOUND);
});
