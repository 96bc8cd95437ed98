// Issue 16, item 6: what an owner needs of governance in the dashboard, in a real browser against the compiled API
// (as `npm start` runs it) and an orchestrator: make a key and revoke it, set a retention policy, preview and apply
// it, delete a model behind a typed confirmation (refused while a channel points at it unless forced), and read it
// all back in the audit log; register a webhook and watch its deliveries. Each step is checked against the API too. Screenshots land in test-output/screenshots/.
import assert from 'node:assert/strict';
import { createServer } from 'node:http';
import { after, before, describe, test } from 'node:test';
import type { Browser, Page } from 'playwright-core';
import { ensureDashboardBuilt, launchChromium, screenshot } from './support/browser.js';
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

let app: ApiProcess;
let tenant: TestTenant;
let browser: Browser;
let page: Page;
const pageErrors: string[] = [];
let orchestrator: WorkerProcess;
const model = { id: '', name: `governed-${Date.now()}`, versionIds: [] as string[] };
/** A second model, for the webhook's event. */
const other = { id: '' };
/** A local webhook receiver the operator allows (KILN_WEBHOOK_ALLOWED_DESTINATIONS): counts requests, answers ok. */
const receiver = { port: 0, requests: 0, server: createServer((_req, res) => void res.writeHead(200).end('ok')) };

before(async () => {
  ensureDashboardBuilt();
  receiver.port = await freePort();
  receiver.server.on('request', () => receiver.requests++);
  await new Promise<void>((resolve) => receiver.server.listen(receiver.port, '127.0.0.1', resolve));
  const allow = { KILN_WEBHOOK_ALLOWED_DESTINATIONS: `127.0.0.1:${receiver.port}` };
  app = await startApi(allow);
  orchestrator = new WorkerProcess({ ...allow, KILN_WORKER_ROLES: 'orchestrator' });
  await orchestrator.start();
  tenant = await createTenant(app, 'web-governance');
  const created = await api(app).post('/v1/models').set(tenant.auth).send({ name: model.name }).expect(201);
  model.id = (created.body as { id: string }).id;
  for (const f of ['mlp.pt2', 'cnn.pt2', 'pair.pt2']) {
    const res = await api(app)
      .post(`/v1/models/${model.id}/versions?filename=${f}`)
      .set(tenant.auth)
      .set('Content-Type', 'application/octet-stream')
      .send(await fixture(f))
      .expect(201);
    model.versionIds.push((res.body as { id: string }).id);
  }
  const second = await api(app)
    .post('/v1/models')
    .set(tenant.auth)
    .send({ name: `${model.name}-b` })
    .expect(201);
  other.id = (second.body as { id: string }).id;
  await api(app)
    .post(`/v1/models/${other.id}/versions?filename=pair.pt2`)
    .set(tenant.auth)
    .set('Content-Type', 'application/octet-stream')
    .send(await fixture('pair.pt2'))
    .expect(201);
  await api(app)
    .put(`/v1/models/${model.id}/channels/prod`)
    .set(tenant.auth)
    .send({ versionId: model.versionIds[0] })
    .expect(200);
  browser = await launchChromium();
  const context = await browser.newContext({ viewport: { width: 1360, height: 900 } });
  page = await context.newPage();
  page.setDefaultTimeout(30_000);
  page.on('pageerror', (e) => pageErrors.push(e.message));
  await page.goto(app.url + '/sign-in');
  await page.getByLabel('API key').fill(tenant.key);
  await page.getByRole('button', { name: 'Sign in' }).click();
  await page.getByRole('heading', { level: 1, name: 'Models' }).waitFor();
});

after(async () => {
  await browser?.close();
  await orchestrator?.stop();
  await new Promise((resolve) => receiver.server.close(resolve));
  await app?.close();
});

describe('governance in the dashboard', () => {
  test('keys: a viewer key is made, shown once, listed, then revoked and refused', async () => {
    await page.getByRole('link', { name: 'Keys', exact: true }).click();
    await page.getByRole('heading', { level: 1, name: 'API keys' }).waitFor();
    await page.getByLabel('Name').fill('contractor');
    await page.getByLabel('Role').selectOption('viewer');
    await page.getByLabel('Expires').selectOption({ label: '1 day' });
    await page.getByRole('button', { name: 'Create key' }).click();
    const secret = (await page.getByTestId('new-key').textContent())!.trim();
    assert.match(secret, /^kiln_/);
    const row = page.getByRole('row').filter({ hasText: 'contractor' });
    await row.getByText('viewer').waitFor();
    await row.getByText('active').waitFor();
    await screenshot(page, '40-keys');
    // The key works as a viewer: it reads, and may not write.
    await api(app).get('/v1/models').set('Authorization', `Bearer ${secret}`).expect(200);
    await api(app).post('/v1/models').set('Authorization', `Bearer ${secret}`).send({ name: 'nope' }).expect(403);

    await row.getByRole('button', { name: 'Revoke contractor' }).click();
    await page.getByRole('dialog').getByRole('button', { name: 'Revoke key' }).click();
    await row.getByText('revoked').waitFor();
    await api(app).get('/v1/models').set('Authorization', `Bearer ${secret}`).expect(401);
  });

  test('retention: a preview lists what would go, the saved policy is applied after a confirmation', async () => {
    await page.getByRole('link', { name: 'Retention', exact: true }).click();
    await page.getByRole('heading', { level: 1, name: 'Retention' }).waitFor();
    await page.getByText('No policy: every version is kept').waitFor();
    await page.getByLabel('Keep each model’s last N versions').fill('0');
    await page.getByRole('button', { name: 'Save policy' }).click();
    await page.getByText('VALIDATION_FAILED').waitFor();

    // Keep the last 1: v3 stays by the rule, v1 by its channel, the other model's only version by the rule; v2 goes.
    await page.getByLabel('Keep each model’s last N versions').fill('1');
    await page.getByRole('button', { name: 'Preview' }).click();
    await page.getByText('1 version would be deleted, 3 kept.').waitFor();
    const table = page.getByRole('table', { name: 'Versions the policy deletes' });
    await table.getByRole('row').filter({ hasText: 'v2' }).getByText('would delete').waitFor();
    assert.equal(await table.getByRole('row').count(), 2, 'a header and the one version');
    await api(app).get(`/v1/versions/${model.versionIds[1]}`).set(tenant.auth).expect(200);

    await page.getByRole('button', { name: 'Save policy' }).click();
    await page.getByText('Policy saved').waitFor();
    assert.deepEqual((await api(app).get('/v1/retention-policy').set(tenant.auth).expect(200)).body, {
      keepLastVersions: 1,
      maxAgeDays: null,
    });
    await page.getByRole('button', { name: 'Apply now' }).click();
    await page.getByRole('dialog').getByRole('button', { name: 'Delete old versions' }).click();
    await page.getByText('Deleted 1, kept 3.').waitFor();
    await screenshot(page, '41-retention');
    await api(app).get(`/v1/versions/${model.versionIds[1]}`).set(tenant.auth).expect(404);
    await api(app).get(`/v1/versions/${model.versionIds[2]}`).set(tenant.auth).expect(200);
  });

  test('delete a model: the name must be typed; refused while a channel points at it, then forced', async () => {
    await page.goto(`${app.url}/models/${model.id}`);
    await page.getByRole('heading', { level: 1, name: model.name }).waitFor();
    await page.getByRole('button', { name: 'Delete model' }).click();
    const dialog = page.getByRole('dialog');
    const confirm = dialog.getByRole('button', { name: 'Delete model' });
    assert.equal(await confirm.isDisabled(), true, 'nothing typed yet');
    await dialog.getByLabel(/to confirm/).fill(model.name.slice(0, -1));
    assert.equal(await confirm.isDisabled(), true, 'a name almost right deletes nothing');
    await dialog.getByLabel(/to confirm/).fill(model.name);
    await confirm.click();
    await dialog.getByText('RESOURCE_IN_USE').waitFor();
    await screenshot(page, '42-delete-in-use');
    await api(app).get(`/v1/models/${model.id}`).set(tenant.auth).expect(200);

    await dialog.getByLabel('Also delete the channels and rollouts that point at it').check();
    await confirm.click();
    await page.getByRole('heading', { level: 1, name: 'Models' }).waitFor();
    await api(app).get(`/v1/models/${model.id}`).set(tenant.auth).expect(404);
  });

  test('webhooks: an endpoint is registered (secret once), its deliveries show the receiver’s answers and redeliver', async () => {
    await page.getByRole('link', { name: 'Webhooks', exact: true }).click();
    await page.getByRole('heading', { level: 1, name: 'Webhooks' }).waitFor();
    await page.getByLabel('URL').fill('http://10.0.0.7/hook');
    await page.getByRole('button', { name: 'Register endpoint' }).click();
    await page.getByText('not allowed').waitFor();

    await page.getByLabel('URL').fill(`http://127.0.0.1:${receiver.port}/kiln`);
    await page.getByLabel(/A channel moved/).check();
    await page.getByRole('button', { name: 'Register endpoint' }).click();
    assert.match((await page.getByTestId('webhook-secret').textContent())!.trim(), /^whsec_/);
    await page.getByRole('table', { name: 'Webhook endpoints' }).getByText('channel.moved').waitFor();

    // An event: the receiver answers, the deliveries list shows it.
    await api(app).put(`/v1/models/${other.id}/channels/beta`).set(tenant.auth).send({ version: 1 }).expect(200);
    const deliveries = page.getByRole('table', { name: 'Webhook deliveries' });
    for (
      let i = 0;
      i < 60 &&
      !(await deliveries
        .getByText('delivered')
        .isVisible()
        .catch(() => false));
      i++
    ) {
      await page.getByRole('button', { name: 'Refresh' }).click();
      await page.waitForTimeout(500);
    }
    const row = deliveries.getByRole('row').filter({ hasText: 'channel.moved' });
    await row.getByText('delivered').waitFor();
    await row.getByText('HTTP 200').waitFor();
    assert.equal(receiver.requests, 1);
    await row.getByRole('button', { name: /^Redeliver channel.moved/ }).click();
    for (let i = 0; i < 60 && receiver.requests < 2; i++) await page.waitForTimeout(250);
    assert.equal(receiver.requests, 2, 'the redelivery reached the receiver');
    await screenshot(page, '44-webhooks');
  });

  test('audit log: the deletes are there, with who and how they ended', async () => {
    await page.getByRole('link', { name: 'Audit log', exact: true }).click();
    await page.getByRole('heading', { level: 1, name: 'Audit log' }).waitFor();
    await page.getByLabel('Action').selectOption('DELETE');
    await page.getByRole('button', { name: 'Filter' }).click();
    const table = page.getByRole('table', { name: 'Audit events' });
    await table.getByRole('row').filter({ hasText: 'DELETE /v1/models/:modelId' }).filter({ hasText: '200' }).waitFor();
    await table.getByRole('row').filter({ hasText: 'RESOURCE_IN_USE' }).waitFor();
    await table.getByRole('row').filter({ hasText: 'retention (owner' }).waitFor();
    await table.getByRole('row').filter({ hasText: 'DELETE /v1/keys/:keyId' }).waitFor();
    const rows = await table.getByRole('row').allTextContents();
    assert.ok(
      rows.slice(1).every((r) => r.includes('DELETE')),
      `only deletes after the filter:\n${rows.join('\n')}`,
    );
    await screenshot(page, '43-audit');
    assert.deepEqual(pageErrors, []);
  });
});
