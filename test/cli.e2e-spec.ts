// The `kiln` CLI as a CI job runs it: a child process (not a TTY, so plain progress lines), against the API
// started here on an ephemeral port, a real build worker and compiler. Checks the commands, --json output and
// the documented exit codes (0 ok, 1 compilation failed, 2 usage, 3 auth, 4 not found, 5 server, 130 Ctrl-C).
import assert from 'node:assert/strict';
import { type ChildProcess, spawn } from 'node:child_process';
import { existsSync } from 'node:fs';
import { mkdtemp, readFile, rm, stat, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { after, before, describe, test } from 'node:test';
import { AVX512_SERVER_FINGERPRINT } from '@kiln/matching';
import type { Artifact, CompileRemoteResult, Compilation, Resolution } from '@kiln/sdk';
import {
  createTenant,
  FIXTURES_DIR,
  REPO_ROOT,
  startApi,
  type TestTenant,
  waitForCompilation,
  WorkerProcess,
  type ApiProcess,
} from './support/kiln-harness.js';

// Every x86-64 host from v2 up builds v2 (a test never assumes the CPU it runs on).
const TARGET = 'linux-x86_64-v2';
const KILN_BIN = path.join(REPO_ROOT, 'apps/cli/bin/kiln.js');

let app: ApiProcess;
let baseUrl: string;
let tenant: TestTenant;
let home: string;
const worker = new WorkerProcess({ KILN_WORKER_TARGETS: TARGET });

interface CliRun {
  code: number | null;
  signal: NodeJS.Signals | null;
  stdout: string;
  stderr: string;
}

/** Runs `kiln ...` with its own config/cache folders; `env` adds or overrides variables. */
function kiln(
  args: string[],
  env: Record<string, string | undefined> = {},
  onStderr?: (text: string, child: ChildProcess) => void,
): Promise<CliRun> {
  const child = spawn(process.execPath, [KILN_BIN, ...args], {
    cwd: home,
    env: {
      ...process.env,
      XDG_CONFIG_HOME: path.join(home, 'config'),
      XDG_CACHE_HOME: path.join(home, 'cache'),
      KILN_API_URL: baseUrl,
      KILN_API_KEY: tenant.key,
      ...env,
    },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let stdout = '';
  let stderr = '';
  child.stdout.on('data', (c: Buffer) => (stdout += c.toString()));
  child.stderr.on('data', (c: Buffer) => {
    stderr += c.toString();
    onStderr?.(stderr, child);
  });
  return new Promise((resolve) => child.on('close', (code, signal) => resolve({ code, signal, stdout, stderr })));
}

const show = (r: CliRun): string => `exit ${r.code}\nstdout:\n${r.stdout}\nstderr:\n${r.stderr}`;

before(async () => {
  // A target nobody serves gives up after 8 s here (NO_WORKER), so a failing compilation is quick.
  app = await startApi({ KILN_BUILD_WAIT_FOR_WORKER_S: '8' });
  baseUrl = app.url;
  tenant = await createTenant(app, 'cli');
  home = await mkdtemp(path.join(os.tmpdir(), 'kiln-cli-e2e-'));
  await worker.start();
});

after(async () => {
  await worker.stop();
  await app?.close();
  await rm(home, { recursive: true, force: true });
});

describe('kiln login', () => {
  test('stores the URL and key in credentials.json (mode 0600); later commands use it', async () => {
    const login = await kiln(['login', '--url', baseUrl, '--key', tenant.key], {
      KILN_API_URL: undefined,
      KILN_API_KEY: undefined,
    });
    assert.equal(login.code, 0, show(login));
    const file = path.join(home, 'config', 'kiln', 'credentials.json');
    assert.equal((await stat(file)).mode & 0o777, 0o600);
    assert.deepEqual(JSON.parse(await readFile(file, 'utf8')), { apiUrl: baseUrl, apiKey: tenant.key });
    const list = await kiln(['artifacts', '00000000-0000-4000-8000-000000000000'], {
      KILN_API_URL: undefined,
      KILN_API_KEY: undefined,
    });
    assert.equal(list.code, 4, show(list)); // authenticated through the file; the version does not exist
  });

  test('a wrong key is exit 3, and nothing is stored', async () => {
    const r = await kiln(
      ['login', '--url', baseUrl, '--key', 'kiln_0123456789ab_AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA'],
      {
        XDG_CONFIG_HOME: path.join(home, 'other-config'),
      },
    );
    assert.equal(r.code, 3, show(r));
    assert.match(r.stderr, /UNAUTHENTICATED/);
    assert.ok(!existsSync(path.join(home, 'other-config', 'kiln', 'credentials.json')));
  });
});

describe('kiln compile, status, artifacts, download, resolve', () => {
  let result: CompileRemoteResult;

  test('compile prints progress lines (not a TTY) and the results; exit 0', async () => {
    const r = await kiln(['compile', path.join(FIXTURES_DIR, 'mlp.pt2'), '--model', 'cli-mlp', '--targets', TARGET]);
    assert.equal(r.code, 0, show(r));
    assert.match(r.stderr, /upload 100%/);
    assert.match(r.stderr, /uploaded: version/);
    assert.match(r.stderr, new RegExp(`${TARGET}: running`));
    assert.match(r.stderr, new RegExp(`${TARGET}: succeeded`));
    assert.match(r.stdout, /: succeeded/);
    assert.match(r.stdout, /SPEEDUP/);
  });

  test('compile --json gives the whole result (here answered from the cache)', async () => {
    const r = await kiln([
      '--json',
      'compile',
      path.join(FIXTURES_DIR, 'mlp.pt2'),
      '--model',
      'cli-mlp',
      '--targets',
      TARGET,
    ]);
    assert.equal(r.code, 0, show(r));
    assert.equal(r.stderr, '');
    result = JSON.parse(r.stdout) as CompileRemoteResult;
    assert.ok(result.ok);
    assert.equal(result.targets[0].status, 'cached');
    assert.equal(result.artifacts.length, 1);
  });

  test('status, artifacts, download and resolve', async () => {
    const status = await kiln(['status', result.compilation.id, '--json']);
    assert.equal(status.code, 0, show(status));
    assert.equal((JSON.parse(status.stdout) as Compilation).status, 'succeeded');
    const human = await kiln(['status', result.compilation.id]);
    assert.match(human.stdout, new RegExp(`${TARGET}\\s+cached`));

    const artifacts = await kiln(['artifacts', result.version.id, '--json']);
    assert.equal(artifacts.code, 0, show(artifacts));
    const list = JSON.parse(artifacts.stdout) as Artifact[];
    assert.deepEqual(
      list.map((a) => a.targetId),
      [TARGET],
    );

    const out = path.join(home, 'dl');
    const dl = await kiln(['download', list[0].id, '-o', out]);
    assert.equal(dl.code, 0, show(dl));
    assert.ok(existsSync(path.join(out, `${TARGET}.pt2`)), dl.stdout);
    assert.match(dl.stdout, /aoti_load_package/);

    const fingerprint = path.join(home, 'fingerprint.json');
    await writeFile(fingerprint, JSON.stringify(AVX512_SERVER_FINGERPRINT));
    const resolved = await kiln(['resolve', 'cli-mlp', '--fingerprint', fingerprint, '--json']);
    assert.equal(resolved.code, 0, show(resolved));
    const resolution = JSON.parse(resolved.stdout) as Resolution;
    assert.equal(resolution.model.name, 'cli-mlp');
    assert.equal(resolution.fallback.kind, 'portable');
    const text = await kiln(['resolve', 'cli-mlp', '--fingerprint', fingerprint]);
    assert.match(text.stdout, /^model cli-mlp version \d+ \(by latest\)\nartifact /);
  });
});

describe('exit codes', () => {
  test('a compilation that fails is exit 1', async () => {
    // No build worker here serves a GPU target (this machine has no GPU): NO_WORKER after 8 s.
    const r = await kiln([
      'compile',
      path.join(FIXTURES_DIR, 'mlp.pt2'),
      '--model',
      'cli-mlp',
      '--targets',
      'linux-x86_64-cuda-sm90',
    ]);
    assert.equal(r.code, 1, show(r));
    assert.match(r.stdout, /failed: NO_WORKER/);
  });

  test('usage errors are exit 2: missing options, unknown targets, a refused archive', async () => {
    const missing = await kiln(['compile', path.join(FIXTURES_DIR, 'mlp.pt2')]);
    assert.equal(missing.code, 2, show(missing));
    const unknown = await kiln([
      'compile',
      path.join(FIXTURES_DIR, 'mlp.pt2'),
      '--model',
      'cli-mlp',
      '--targets',
      'linux-x86_64-v9',
    ]);
    assert.equal(unknown.code, 2, show(unknown));
    assert.match(unknown.stderr, /UNKNOWN_TARGET/);
    const notZip = path.join(home, 'not-a-model.pt2');
    await writeFile(notZip, 'definitely not a zip archive');
    const refused = await kiln(['--json', 'compile', notZip, '--model', 'cli-bad', '--targets', TARGET]);
    assert.equal(refused.code, 2, show(refused));
    assert.equal((JSON.parse(refused.stdout) as { error: { code: string } }).error.code, 'PT2_NOT_ZIP');
  });

  test('no or bad credentials are exit 3; unknown ids exit 4; an unreachable API exit 5', async () => {
    const none = await kiln(['artifacts', '00000000-0000-4000-8000-000000000000'], {
      KILN_API_URL: undefined,
      KILN_API_KEY: undefined,
      XDG_CONFIG_HOME: path.join(home, 'empty'),
    });
    assert.equal(none.code, 3, show(none));
    const bad = await kiln(['status', '00000000-0000-4000-8000-000000000000'], {
      KILN_API_KEY: 'kiln_0123456789ab_AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA',
    });
    assert.equal(bad.code, 3, show(bad));
    const missing = await kiln(['status', '00000000-0000-4000-8000-000000000000']);
    assert.equal(missing.code, 4, show(missing));
    const notFile = await kiln(['compile', path.join(home, 'nope.pt2'), '--model', 'x', '--targets', TARGET]);
    assert.equal(notFile.code, 4, show(notFile));
    const down = await kiln(['status', '00000000-0000-4000-8000-000000000000'], { KILN_API_URL: 'http://127.0.0.1:9' });
    assert.equal(down.code, 5, show(down));
  });

  test('Ctrl-C while compiling cancels the compilation on the server; exit 130', async () => {
    let compilationId = '';
    let interrupted = false;
    const r = await kiln(
      ['compile', path.join(FIXTURES_DIR, 'cnn.pt2'), '--model', 'cli-cnn', '--targets', TARGET],
      {},
      (stderr, child) => {
        compilationId ||= /compilation ([0-9a-f-]{36})/.exec(stderr)?.[1] ?? '';
        if (!interrupted && new RegExp(`${TARGET}: running`).test(stderr)) {
          interrupted = true;
          child.kill('SIGINT');
        }
      },
    );
    assert.equal(r.code, 130, show(r));
    assert.ok(compilationId, r.stderr);
    const done = await waitForCompilation(app, tenant, compilationId, undefined, 3 * 60_000);
    assert.equal(done.status, 'cancelled');
  });
});
