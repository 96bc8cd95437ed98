// A real Chromium for the dashboard's end-to-end tests: Debian's /usr/bin/chromium driven by playwright-core
// (never a downloaded browser build). scripts/test.sh installs the package when it is missing.
import { execFileSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import { mkdir, readFile } from 'node:fs/promises';
import path from 'node:path';
import { type Browser, chromium, type JSHandle, type Page } from 'playwright-core';
import { REPO_ROOT } from './kiln-harness.js';

export const CHROMIUM = process.env.KILN_CHROMIUM ?? '/usr/bin/chromium';
export const SCREENSHOT_DIR = path.join(REPO_ROOT, 'test-output', 'screenshots');
export const WEB_DIST = path.join(REPO_ROOT, 'apps', 'web', 'dist');

/**
 * Flags that keep a headless Chromium to itself on a machine without a network: no background
 * connections (they would be refused and retried), no component updates, no GPU, no sandbox (root).
 * Playwright gives every launch a fresh, empty profile.
 */
const CHROMIUM_ARGS = [
  '--no-sandbox',
  '--disable-gpu',
  '--disable-quic',
  '--no-first-run',
  '--disable-background-networking',
  '--disable-component-update',
  '--disable-sync',
  '--disable-dev-shm-usage',
];

export async function launchChromium(): Promise<Browser> {
  if (!existsSync(CHROMIUM)) {
    throw new Error(`${CHROMIUM} is missing: apt-get install -y chromium (scripts/test.sh does this).`);
  }
  return chromium.launch({ executablePath: CHROMIUM, headless: true, args: CHROMIUM_ARGS });
}

/** The API serves apps/web/dist; build it when a test runs on a checkout that never built it. */
export function ensureDashboardBuilt(): void {
  if (existsSync(path.join(WEB_DIST, 'index.html'))) return;
  execFileSync('npm', ['run', 'build', '-w', '@kiln/web'], { cwd: REPO_ROOT, stdio: 'inherit' });
}

/**
 * Drops a file on an element the way a user's drag from the desktop does: a DataTransfer holding a File
 * is built in the page, then dragenter, dragover and drop are dispatched with it.
 */
export async function dropFile(
  page: Page,
  selector: string,
  filePath: string,
  name = path.basename(filePath),
): Promise<void> {
  const bytes = await readFile(filePath);
  const dataTransfer: JSHandle = await page.evaluateHandle(
    // A string, not a function: the root tsconfig has no DOM types, and this runs in the page.
    `(() => {
      const bin = atob(${JSON.stringify(bytes.toString('base64'))});
      const data = new Uint8Array(bin.length);
      for (let i = 0; i < bin.length; i++) data[i] = bin.charCodeAt(i);
      const dt = new DataTransfer();
      dt.items.add(new File([data], ${JSON.stringify(name)}, { type: 'application/octet-stream' }));
      return dt;
    })()`,
  );
  for (const type of ['dragenter', 'dragover', 'drop']) await page.dispatchEvent(selector, type, { dataTransfer });
  await dataTransfer.dispose();
}

/** A full-page PNG under test-output/screenshots/. */
export async function screenshot(page: Page, name: string): Promise<string> {
  await mkdir(SCREENSHOT_DIR, { recursive: true });
  const file = path.join(SCREENSHOT_DIR, `${name}.png`);
  // Let skeletons resolve and fonts settle so the picture shows the page as a person sees it.
  await page.waitForLoadState('networkidle', { timeout: 3000 }).catch(() => undefined); // an open event stream never idles
  // From the top, so the sticky header sits where a person sees it (focus moves may have scrolled).
  await page.evaluate('window.scrollTo(0, 0)');
  await page.screenshot({ path: file, fullPage: true, animations: 'disabled' });
  return file;
}
