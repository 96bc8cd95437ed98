// The README's first command, as a new user runs it: `npm start` (set-up, the whole stack as compiled services,
// the demo: a sample model compiled for this machine's targets, resolved and run by the device runtime). Then what
// its last line promises, in a real browser: the dashboard at /, a client route of it, /docs and /openapi.json, and
// signing in with the key the demo saved. Afterwards the API and worker it started are stopped again (the other
// end-to-end tests run their own, and a worker left running would take their builds).
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { readFile } from 'node:fs/promises';
import path from 'node:path';
import { after, before, describe, test } from 'node:test';
import type { Browser, Page } from 'playwright-core';
import { launchChromium, screenshot } from './support/browser.js';
import { REPO_ROOT } from './support/kiln-harness.js';

const PORT = process.env.KILN_API_PORT ?? '3000';
const BASE = `http://127.0.0.1:${PORT}`;
const KILN_HOME = path.resolve(REPO_ROOT, process.env.KILN_HOME ?? '.kiln');

interface CommandResult {
  code: number;
  output: string;
}

function run(command: string, args: string[], timeoutMs: number): Promise<CommandResult> {
  return new Promise((resolve) => {
    execFile(
      command,
      args,
      { cwd: REPO_ROOT, env: process.env, maxBuffer: 64 << 20, timeout: timeoutMs },
      (err, stdout, stderr) => {
        const code = err ? (typeof err.code === 'number' ? err.code : -1) : 0;
        if (process.env.KILN_TEST_VERBOSE) process.stderr.write(stdout + stderr);
        resolve({ code, output: `${stdout}${stderr}` });
      },
    );
  });
}

let start: CommandResult;
let browser: Browser;
let page: Page;

before(async () => {
  start = await run('npm', ['start'], 20 * 60_000);
  browser = await launchChromium();
  page = await browser.newPage({ viewport: { width: 1360, height: 900 } });
  page.setDefaultTimeout(30_000);
});

after(async () => {
  await browser?.close();
  const stopped = await run('bash', ['scripts/stack.sh', 'stop', 'api', 'worker'], 120_000);
  assert.equal(stopped.code, 0, stopped.output);
});

describe('npm start, as the README says', () => {
  test('finishes green: the demo compiled, resolved and ran a model on this machine', () => {
    assert.equal(start.code, 0, start.output.slice(-6000));
    assert.match(start.output, /compiling for the targets this machine's worker builds: linux-x86_64-v2/);
    assert.match(start.output, /chosen: linux-x86_64-v\d \(artifact [0-9a-f-]{36}\)/);
    assert.match(start.output, new RegExp(`dashboard: http://127\\.0\\.0\\.1:${PORT}/ \\(sign in with the key in `));
  });

  test('serves the dashboard at / and at a client route, the API docs and the OpenAPI document', async () => {
    for (const route of ['/', '/models', '/playground']) {
      const res = await page.goto(`${BASE}${route}`);
      assert.equal(res?.status(), 200, route);
      await page.locator('#root').waitFor({ state: 'attached' });
      assert.deepEqual(await page.locator('text=Cannot GET').count(), 0, route);
    }
    const docs = await page.goto(`${BASE}/docs`);
    assert.equal(docs?.status(), 200);
    await page.getByText('Kiln API', { exact: false }).first().waitFor();
    const openapi = await fetch(`${BASE}/openapi.json`);
    assert.equal(openapi.status, 200);
    const document = (await openapi.json()) as { info: { title: string }; paths: Record<string, unknown> };
    assert.equal(document.info.title, 'Kiln API');
    assert.ok(document.paths['/v1/resolve'], 'the resolver is documented');
  });

  test('the key the demo saved signs in, and the demo model is there', async () => {
    const credentials = JSON.parse(await readFile(path.join(KILN_HOME, 'demo-credentials.json'), 'utf8')) as {
      key: string;
    };
    await page.goto(`${BASE}/`);
    await page.getByLabel('API key').fill(credentials.key);
    await page.getByRole('button', { name: /sign in/i }).click();
    await page.getByRole('heading', { level: 1, name: 'Models' }).waitFor();
    await page.getByRole('link', { name: 'demo-mlp', exact: true }).first().waitFor();
    await screenshot(page, '00-npm-start-models');
  });
});
