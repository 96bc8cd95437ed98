// The dashboard in a real browser against the real stack: the compiled API (as `npm start` runs it) serving the
// built dashboard on a real port, a real build worker, Debian's Chromium driven by playwright-core. Signs in,
// uploads mlp.pt2 by drag and drop (straight to S3 through presigned part URLs: CORS checked for real),
// watches the builds of every x86 target this host serves live over server-sent events, reads the artifacts,
// asks the resolver playground about two devices (expectations written in the harness, expectedX86Choice), and
// moves a channel. Screenshots of each main page land in test-output/screenshots/.
import assert from 'node:assert/strict';
import path from 'node:path';
import { writeFile } from 'node:fs/promises';
import { after, before, describe, test } from 'node:test';
import type { Browser, BrowserContext, Page, Request } from 'playwright-core';
import { loadKilnConfig } from '@kiln/config';
import { dropFile, ensureDashboardBuilt, launchChromium, screenshot, SCREENSHOT_DIR } from './support/browser.js';
import {
  api,
  createTenant,
  FIXTURES_DIR,
  startApi,
  type TestTenant,
  WorkerProcess,
  expectedX86Choice,
  x86LevelOf,
  type ApiProcess,
} from './support/kiln-harness.js';

const BUILD_TIMEOUT_MS = 20 * 60_000;

let app: ApiProcess;
let baseUrl: string;
let tenant: TestTenant;
let browser: Browser;
let context: BrowserContext;
let page: Page;
const worker = new WorkerProcess();
/** The x86 targets this host's worker serves, lowest level first. */
let served: string[] = [];
const requests: Request[] = [];
const pageErrors: string[] = [];

/** Filled in as the story goes. */
const state = { modelId: '', versionId: '', compilationId: '' };

before(async () => {
  ensureDashboardBuilt();
  app = await startApi();
  baseUrl = app.url;
  tenant = await createTenant(app, 'web');
  await worker.start();
  served = worker.servedX86Targets();
  assert.ok(served.length > 0, `the worker serves no x86 target:\n${worker.output}`);
  browser = await launchChromium();
  context = await browser.newContext({ viewport: { width: 1360, height: 900 }, acceptDownloads: false });
  page = await context.newPage();
  page.setDefaultTimeout(30_000);
  page.on('request', (r) => requests.push(r));
  page.on('pageerror', (e) => pageErrors.push(e.message));
});

after(async () => {
  await context?.close();
  await browser?.close();
  await worker.stop();
  await app?.close();
});

describe('dashboard in a real browser', () => {
  test('the API serves the dashboard at / with client routes, and never shadows the API', async () => {
    for (const p of ['/', '/models/5f0c1d9e-1111-4222-8333-444455556666', '/playground']) {
      const res = await fetch(baseUrl + p, { headers: { Accept: 'text/html' } });
      assert.equal(res.status, 200, p);
      assert.match(await res.text(), /<div id="root">/, p);
    }
    const missing = await fetch(`${baseUrl}/v1/no-such-route`, { headers: { Accept: 'text/html' } });
    assert.equal(missing.status, 404);
    assert.equal(((await missing.json()) as { error: { code: string } }).error.code, 'NOT_FOUND');
    assert.equal(
      (await fetch(`${baseUrl}/openapi.json`)).headers.get('content-type')?.startsWith('application/json'),
      true,
    );
    assert.equal((await fetch(`${baseUrl}/assets/missing-bundle.js`)).status, 404);
  });

  test('sign in: a wrong key is refused, the tenant key opens the empty models page', async () => {
    await page.goto(baseUrl + '/');
    await page.waitForURL(/\/sign-in$/);
    await screenshot(page, '00-sign-in');
    await page.getByLabel('API key').fill('kiln_0123456789ab_AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA');
    await page.getByRole('button', { name: 'Sign in' }).click();
    await page.getByText('This key was not accepted').waitFor();

    await page.getByLabel('API key').fill(tenant.key);
    await page.getByRole('button', { name: 'Sign in' }).click();
    await page.getByRole('heading', { level: 1, name: 'Models' }).waitFor();
    await page.getByText('No models yet — drag a .pt2 here').waitFor();
    assert.equal(await page.evaluate('sessionStorage.getItem("kiln.apiKey")'), tenant.key);
    await screenshot(page, '01-models-empty');
  });

  test('a refused archive shows its PT2_* code (file picker path)', async () => {
    const bad = path.join(SCREENSHOT_DIR, '..', 'not-a-model.pt2');
    await writeFile(bad, 'this is not a zip archive');
    await page.locator('input[type=file]').setInputFiles(bad);
    const dialog = page.getByRole('dialog');
    await dialog.getByLabel('Model name').fill('refused-model');
    await dialog.getByRole('button', { name: 'Upload', exact: true }).click();
    await dialog.getByText('Kiln refused this archive').waitFor();
    await dialog.getByText('PT2_NOT_ZIP').waitFor();
    await screenshot(page, '02-upload-refused');
    await dialog.getByRole('button', { name: 'Close' }).click();
    await dialog.waitFor({ state: 'hidden' });
  });

  test('drag and drop mlp.pt2: real progress, straight to S3, then the version page', async () => {
    await page.reload();
    await page.getByRole('heading', { level: 1, name: 'Models' }).waitFor();
    await dropFile(page, '[data-dropzone]', path.join(FIXTURES_DIR, 'mlp.pt2'));
    const dialog = page.getByRole('dialog');
    await dialog.waitFor();
    assert.equal(await dialog.getByLabel('Model name').inputValue(), 'mlp');

    // Record every value the progress bar takes (the upload is fast on loopback).
    await page.evaluate(`(() => {
      window.__progress = [];
      const seen = () => document.querySelectorAll('[role=progressbar]').forEach((el) => {
        const v = el.getAttribute('aria-valuenow');
        if (v !== null) window.__progress.push(Number(v));
      });
      new MutationObserver(seen).observe(document.body, { subtree: true, childList: true, attributes: true, attributeFilter: ['aria-valuenow'] });
    })()`);
    const s3Origin = new URL(loadKilnConfig().S3_ENDPOINT).origin;
    const putsBefore = requests.filter((r) => r.method() === 'PUT' && r.url().startsWith(s3Origin)).length;

    // On loopback 360 KB upload in a blink, before the bar can be seen moving: slow the browser's uploads
    // down (Chrome DevTools network emulation) so the test sees the intermediate values a real user sees.
    const cdp = await page.context().newCDPSession(page);
    await cdp.send('Network.emulateNetworkConditions', {
      offline: false,
      latency: 0,
      downloadThroughput: -1,
      uploadThroughput: 256 * 1024,
    });
    await dialog.getByRole('button', { name: 'Upload', exact: true }).click();
    await page.waitForURL(/\/versions\/[0-9a-f-]{36}$/, { timeout: 120_000 });
    await cdp.send('Network.emulateNetworkConditions', {
      offline: false,
      latency: 0,
      downloadThroughput: -1,
      uploadThroughput: -1,
    });
    await cdp.detach();
    state.versionId = page.url().split('/').pop()!;

    const progress = await page.evaluate<number[]>('window.__progress');
    assert.ok(progress.length > 0, 'the progress bar showed values');
    assert.ok(Math.max(...progress) > 0, `progress moved: ${progress.join(',')}`);

    // The bytes went to S3 from the browser (cross-origin PUT with the part's sha256), not through the API.
    const puts = requests.filter((r) => r.method() === 'PUT' && r.url().startsWith(s3Origin)).slice(putsBefore);
    assert.ok(puts.length >= 1, 'a part was PUT to S3');
    for (const put of puts) {
      assert.ok(put.headers()['x-amz-checksum-sha256'], 'the part carries its sha256');
      assert.equal((await put.response())?.status(), 200);
    }
    assert.equal(
      requests.some((r) => r.method() === 'POST' && /\/v1\/models\/[^/]+\/versions/.test(r.url())),
      false,
      'no fallback to the direct upload',
    );

    await page.getByRole('heading', { level: 1, name: 'mlp v1' }).waitFor();
    await page.getByText('Uploaded and validated.').waitFor();
    // Graph summary: the op histogram, parameters, and the dynamic batch dim with its range.
    const ops = page.getByRole('list', { name: 'Operator histogram' });
    await ops.getByText('linear', { exact: true }).waitFor();
    await page.getByText('85,002').waitFor();
    const shape = await page.locator('.tensor-table').first().locator('.dim-dynamic').first().textContent();
    assert.match(shape ?? '', /^s\d+ ∈ \[\d+, \d+\]$/);
    state.modelId = (await page.getByRole('link', { name: 'mlp', exact: true }).first().getAttribute('href'))!
      .split('/')
      .pop()!;
    await screenshot(page, '03-version');
  });

  test('compile for the x86 targets this host serves and watch the builds live until done', async () => {
    for (const target of served) {
      const box = page.locator(`#target-${target}`);
      await box.waitFor();
      await page.locator(`li:has(#target-${target}) .worker-state.online`).waitFor({ timeout: 60_000 });
      if (!(await box.isChecked())) await box.check();
    }
    for (const box of await page.getByRole('checkbox').all()) {
      const value = await box.getAttribute('value');
      if (value && !served.includes(value) && (await box.isChecked())) await box.uncheck();
    }
    const n = served.length;
    await page.getByRole('button', { name: `Compile for ${n} target${n === 1 ? '' : 's'}` }).click();
    await page.waitForURL(/\/compilations\/[0-9a-f-]{36}$/);
    state.compilationId = page.url().split('/').pop()!;

    // Live over server-sent events, opened with a short-lived token (never the API key in a URL).
    await page.locator('.live-indicator', { hasText: 'Live' }).waitFor({ timeout: 30_000 });
    const stream = requests.find((r) => r.url().includes(`/v1/compilations/${state.compilationId}/events?token=ket1.`));
    assert.ok(stream, 'an EventSource was opened with an events token');
    assert.equal(stream.url().includes(tenant.key), false);

    // While it builds: the phase moves, and the log is readable.
    const watched = served[served.length - 1];
    const card = page.locator(`[data-target="${watched}"]`);
    await card.locator('.badge', { hasText: /^(Building|Done)/ }).waitFor({ timeout: 120_000 });
    await card.getByRole('button', { name: 'Show log' }).click();
    await card.getByLabel(`Build log of ${watched}`).waitFor();
    await screenshot(page, '04-compilation-running');

    for (const target of served) {
      await page
        .locator(`[data-target="${target}"] .badge`, { hasText: /^Done/ })
        .waitFor({ timeout: BUILD_TIMEOUT_MS });
    }
    await page.locator('.live-indicator', { hasText: 'Final' }).waitFor();
    await page.getByText('Succeeded', { exact: true }).waitFor();
    const log = await card.getByLabel(`Build log of ${watched}`).textContent();
    assert.ok((log ?? '').length > 50, 'the log has the compile driver output');
    assert.equal(await page.getByRole('button', { name: /^Cancel/ }).count(), 0, 'no cancel once finished');
    await screenshot(page, '05-compilation');
  });

  test('the event stream endpoint: token scoped to one compilation, header auth, JSON errors', async () => {
    const token = await api(app)
      .post(`/v1/compilations/${state.compilationId}/events-token`)
      .set(tenant.auth)
      .expect(201);
    const { url } = token.body as { url: string };
    // The compilation is over: the stream sends its state and `end`, then closes.
    const res = await api(app)
      .get(url)
      .buffer(true)
      .parse((r, cb) => {
        let text = '';
        r.on('data', (c: Buffer) => (text += c.toString()));
        r.on('end', () => cb(null, text));
      });
    assert.equal(res.status, 200);
    assert.match(String(res.headers['content-type']), /^text\/event-stream/);
    assert.match(res.body as string, /event: compilation\ndata: \{"id":"/);
    assert.match(res.body as string, /event: end\ndata: \{"id":"[^"]+","status":"succeeded"\}/);

    const other = await createTenant(app, 'web-other');
    const refused = await api(app).get(url.replace(state.compilationId, '00000000-0000-4000-8000-000000000000'));
    assert.equal(refused.status, 401);
    const noAuth = await api(app).get(`/v1/compilations/${state.compilationId}/events`);
    assert.equal((noAuth.body as { error: { code: string } }).error.code, 'UNAUTHENTICATED');
    const foreign = await api(app).get(`/v1/compilations/${state.compilationId}/events`).set(other.auth);
    assert.equal(foreign.status, 404, "another tenant's compilation is not found");
  });

  test('models list shows the latest version and its compilation', async () => {
    await page.getByRole('link', { name: 'Models', exact: true }).first().click();
    await page.getByRole('heading', { level: 1, name: 'Models' }).waitFor();
    const row = page.locator('tr', { has: page.getByRole('link', { name: 'mlp', exact: true }) });
    await row.getByText('Succeeded').waitFor();
    await row.getByRole('link', { name: 'v1' }).waitFor();
    await screenshot(page, '06-models');
  });

  test('artifacts: verified, timed, with a speedup chart, hashes and presigned downloads', async () => {
    await page.goto(`${baseUrl}/versions/${state.versionId}/artifacts`);
    await page.getByRole('heading', { level: 1, name: 'Artifacts of mlp v1' }).waitFor();
    const table = page.locator('table.artifacts-table');
    for (const target of served) await table.getByRole('rowheader', { name: new RegExp(`^${target}`) }).waitFor();
    assert.equal(await table.locator('tbody tr').count(), served.length);
    assert.equal(await table.locator('.check.bad').count(), 0, 'numerics and ISA checks passed');
    await page.getByRole('list', { name: /Eager and compiled time/ }).waitFor();
    assert.equal(await page.locator('.timing-row').count(), served.length);
    assert.match((await table.locator('.hash code').first().textContent()) ?? '', /^[0-9a-f]{12}$/);

    const row = table.locator('tr', { has: page.getByRole('rowheader', { name: new RegExp(`^${served[0]}`) }) });
    await row.getByRole('button', { name: 'Download' }).click();
    const code = page.getByRole('link', { name: /Code package/ });
    await code.waitFor();
    const href = (await code.getAttribute('href')) ?? '';
    assert.ok(href.startsWith(new URL(loadKilnConfig().S3_ENDPOINT).origin), href);
    assert.match(href, /X-Amz-Signature=/);
    const part = await fetch(href);
    assert.equal(part.status, 200, 'the presigned link downloads');
    await screenshot(page, '07-artifacts');
  });

  test('resolver playground: the AVX2 laptop and AVX-512 server presets get the expected artifact', async () => {
    const artifacts = (await api(app).get(`/v1/versions/${state.versionId}/artifacts`).set(tenant.auth).expect(200))
      .body as { targetId: string; timing: { speedup: number; speedupCi?: [number, number] } }[];
    const speedups = Object.fromEntries(artifacts.map((a) => [a.targetId, a.timing]));

    await page.getByRole('link', { name: 'Resolver playground' }).click();
    await page.getByRole('heading', { level: 1, name: 'Resolver playground' }).waitFor();
    await page.getByLabel('Model', { exact: true }).selectOption({ label: 'mlp' });

    // The laptop preset is an AVX2 (x86-64-v3) CPU with this build's torch and a glibc these artifacts accept.
    await page.getByRole('button', { name: /^AVX2 laptop/ }).click();
    await page.getByRole('button', { name: 'Resolve' }).click();
    const chosen = page.locator('[data-chosen-target]');
    await chosen.waitFor();
    const laptop = expectedX86Choice(speedups, 3);
    assert.equal(await chosen.getAttribute('data-chosen-target'), laptop, `speedups ${JSON.stringify(speedups)}`);
    for (const target of served.filter((t) => x86LevelOf(t) > 3)) {
      // Refused for the laptop, with the reason in words.
      assert.match((await page.locator(`[data-target="${target}"]`).textContent()) ?? '', /AVX-512/);
    }
    await page.locator('.answer-fallback').getByText('portable graph', { exact: false }).first().waitFor();

    await page.getByRole('button', { name: /^AVX-512 server/ }).click();
    await page.getByRole('button', { name: 'Resolve' }).click();
    await page.locator('[data-chosen-target]').waitFor();
    const server = expectedX86Choice(speedups, 4);
    assert.ok(server !== null, 'the AVX-512 server gets a compiled artifact');
    assert.equal(await page.locator('[data-chosen-target]').getAttribute('data-chosen-target'), server);
    await screenshot(page, '08-playground');
  });

  test('channels: point prod at v1, add v2 with the file picker, move prod to v2, read the history', async () => {
    await page.goto(`${baseUrl}/models/${state.modelId}/channels`);
    await page.getByRole('heading', { level: 1, name: 'Channels of mlp' }).waitFor();
    await page.getByText('No channels yet').waitFor();
    await page.getByLabel('Channel', { exact: true }).fill('prod');
    await page.getByLabel('Version', { exact: true }).selectOption('1');
    await page.getByRole('button', { name: 'Move channel' }).click();
    await page.getByText('prod now points at v1.').waitFor();

    // A second version of the same content (the keyboard path: the file picker on the model page).
    await page.goto(`${baseUrl}/models/${state.modelId}`);
    await page.locator('input[type=file]').setInputFiles(path.join(FIXTURES_DIR, 'mlp.pt2'));
    await page.getByRole('dialog').getByRole('button', { name: 'Upload', exact: true }).click();
    await page.getByRole('heading', { level: 1, name: 'mlp v2' }).waitFor({ timeout: 120_000 });

    await page.goto(`${baseUrl}/models/${state.modelId}/channels`);
    await page.getByLabel('Channel', { exact: true }).fill('prod');
    await page.getByLabel('Version', { exact: true }).selectOption('2');
    await page.getByRole('button', { name: 'Move channel' }).click();
    await page.getByText('prod now points at v2.').waitFor();
    const history = page.getByRole('list', { name: /Moves of prod/ });
    await history.getByText('v1 → v2').waitFor();
    await history.getByText('Created at v1').waitFor();
    const channels = (await api(app).get(`/v1/models/${state.modelId}/channels`).set(tenant.auth).expect(200)).body as {
      name: string;
      versionNumber: number;
    }[];
    assert.deepEqual(
      channels.map((c) => [c.name, c.versionNumber]),
      [['prod', 2]],
    );
    await screenshot(page, '09-channels');
  });

  test('storage the browser cannot reach: the upload is dropped and the file goes through the API', async () => {
    const s3Origin = new URL(loadKilnConfig().S3_ENDPOINT).origin;
    // What a browser sees when S3's endpoint is internal or its CORS rules refuse this origin: no answer at all.
    await page.route(`${s3Origin}/**`, (route) => route.abort('connectionrefused'));
    try {
      await page.goto(`${baseUrl}/`);
      await page.getByRole('heading', { level: 1, name: 'Models' }).waitFor();
      const before = requests.length;
      await dropFile(page, '[data-dropzone]', path.join(FIXTURES_DIR, 'cnn.pt2'));
      const dialog = page.getByRole('dialog');
      await dialog.waitFor();
      assert.equal(await dialog.getByLabel('Model name').inputValue(), 'cnn');
      await dialog.getByRole('button', { name: 'Upload', exact: true }).click();
      await page.waitForURL(/\/versions\/[0-9a-f-]{36}$/, { timeout: 120_000 });
      await page.getByRole('heading', { level: 1, name: 'cnn v1' }).waitFor();

      const seen = requests.slice(before);
      const created = seen.find((r) => r.method() === 'POST' && /\/v1\/models\/[^/]+\/uploads$/.test(r.url()));
      assert.ok(created, 'the presigned upload was tried first');
      const uploadId = ((await (await created.response())?.json()) as { uploadId: string }).uploadId;
      assert.ok(
        seen.some((r) => r.method() === 'DELETE' && r.url().endsWith(`/v1/uploads/${uploadId}`)),
        'the unfinished upload was aborted',
      );
      const direct = seen.filter((r) => r.method() === 'POST' && /\/v1\/models\/[^/]+\/versions\?/.test(r.url()));
      assert.equal(direct.length, 1, 'the file went through the API once');
      assert.equal((await direct[0].response())?.status(), 201);
      const upload = (await api(app).get(`/v1/uploads/${uploadId}`).set(tenant.auth).expect(200)).body as {
        status: string;
      };
      assert.equal(upload.status, 'aborted');
    } finally {
      await page.unroute(`${s3Origin}/**`);
    }
  });

  test('sign out forgets the key', async () => {
    await page.getByRole('button', { name: 'Sign out' }).click();
    await page.getByRole('heading', { level: 1, name: 'Sign in' }).waitFor();
    assert.equal(await page.evaluate('sessionStorage.getItem("kiln.apiKey")'), null);
    await page.goto(`${baseUrl}/models/${state.modelId}`);
    await page.waitForURL(/\/sign-in$/);
    assert.deepEqual(pageErrors, [], 'no uncaught errors in the page');
  });
});
