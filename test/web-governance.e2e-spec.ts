// Issue 16, item 6: what an owner needs of governance in the dashboard, in a real browser against the compiled API
// (as `npm start` runs it) and an orchestrator: make a key and revoke it, set a retention policy, preview and apply
// it, delete a model behind a typed confirmation (refused while a channel points at it unless forced), and read it
// all back in the audit log. Each step is checked against the API too. Screenshots land in test-output/screenshots/.
import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import type { Browser, Page } from 'playwright-core';
import { ensureDashboardBuilt, launchChromium, screenshot } from './support/browser.js';
import {
  api,
  type ApiProcess,
  createTenant,
  fixture,
  startApi,
  type TestTenant,
  WorkerProcess,
} from './support/kiln-harness.js';

let app: ApiProcess;
let tenant: TestTenant;
let browser: Browser;
let page: Page;
const pageErrors: string[] = [];
const orchestrator = new WorkerProcess({ KILN_WORKER_ROLES: 'orchestrator' });
const model = { id: '', name: `governed-${Date.now()}`, versionIds: [] as string[] };

before(async () => {
  ensureDashboardBuilt();
  app = await startApi();
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
  await orchestrator.stop();
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

    // Keep the last 1: v3 stays by the rule, v1 by its channel; v2 would go.
    await page.getByLabel('Keep each model’s last N versions').fill('1');
    await page.getByRole('button', { name: 'Preview' }).click();
    await page.getByText('1 version would be deleted, 2 kept.').waitFor();
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
    await page.getByText('Deleted 1, kept 2.').waitFor();
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
