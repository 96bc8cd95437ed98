import assert from 'node:assert/strict';
import { existsSync } from 'node:fs';
import { chmod, mkdtemp, readdir, readFile, rm, stat, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { after, before, describe, it } from 'node:test';
import { fileURLToPath } from 'node:url';
import { ErrorCode } from '@kiln/contracts';
import { findTarget, recipeHash } from '@kiln/targets';
import { type DriverOutcome, type DriverProgress, parseProgress, runCompileDriver } from './driver-runner.js';
import { probeSandboxCapabilities, type SandboxCapabilities } from './sandbox.js';

// The real driver needs torch and ~40 s per build; these tests use a fake `kiln_driver` package (fixtures/
// fake-driver) that speaks the same protocol, to check how every way a build can end is mapped.
const FAKE_DRIVER = path.join(path.dirname(fileURLToPath(import.meta.url)), 'fixtures', 'fake-driver');
const PYTHON = '/usr/bin/python3';
const target = findTarget('linux-x86_64-v3')!;

let scratch: string;
let workRoot: string;
let modelPath: string;
let caps: SandboxCapabilities;

before(async () => {
  caps = await probeSandboxCapabilities();
  scratch = await mkdtemp(path.join(os.tmpdir(), 'kiln-driver-spec-'));
  await chmod(scratch, 0o755);
  workRoot = path.join(scratch, 'jobs');
  modelPath = path.join(scratch, 'model.pt2');
  await writeFile(modelPath, 'not really a pt2, but bytes to hash', { mode: 0o644 });
});

after(async () => {
  await rm(scratch, { recursive: true, force: true });
});

async function build(
  mode: string,
  extra: Partial<Parameters<typeof runCompileDriver>[0]> = {},
): Promise<{ outcome: DriverOutcome; progress: DriverProgress[]; logLines: string[] }> {
  const progress: DriverProgress[] = [];
  const logLines: string[] = [];
  const outcome = await runCompileDriver({
    pythonPath: PYTHON,
    modelPath,
    workRoot,
    timeoutMs: 4_000,
    memoryBytes: 256 * 1024 * 1024,
    killGraceMs: 200,
    env: { PYTHONPATH: FAKE_DRIVER, FAKE_DRIVER_MODE: mode },
    onProgress: (p) => progress.push(p),
    onLogLine: (l) => logLines.push(l),
    job: {
      targetId: target.id,
      recipe: target.recipe,
      recipeHash: recipeHash(target.recipe),
      modelContentHash: 'a'.repeat(64),
      cacheKey: 'b'.repeat(64),
      requires: target.requires,
      host: { cpuModel: 'Test CPU', x86Level: 4, gpuName: null, driverVersion: null },
      timing: { warmup: 1, runs: 3 },
      seed: 0,
    },
    ...extra,
  });
  return { outcome, progress, logLines };
}

function failure(outcome: DriverOutcome): Extract<DriverOutcome, { ok: false }> {
  assert.equal(outcome.ok, false, outcome.log);
  return outcome;
}

describe('runCompileDriver', () => {
  it('returns a verified manifest, its parts and the progress of a successful build', async () => {
    const { outcome, progress, logLines } = await build('success');
    assert.equal(outcome.ok, true, outcome.log);
    if (!outcome.ok) return;
    assert.deepEqual(
      progress.map((p) => p.phase),
      ['loading', 'compiling', 'done'],
    );
    assert.equal(typeof progress[0].elapsedS, 'number');
    assert.match(logLines.join('\n'), /fake-driver: mode success/);

    const { manifest, partsDir } = outcome;
    assert.equal(manifest.target, target.id);
    assert.equal(manifest.precision, 'fp32'); // the fake, like drivers before the field, wrote none
    assert.equal(manifest.parts.length, 2);
    for (const part of manifest.parts) {
      assert.equal((await stat(path.join(partsDir, part.sha256))).size, part.size);
    }
    // The weights part is the model's bytes: the driver could read the model placed in the job folder.
    const weights = manifest.parts.find((p) => p.role === 'weights')!;
    assert.equal(await readFile(path.join(partsDir, weights.sha256), 'utf8'), await readFile(modelPath, 'utf8'));

    // job.json carried the sandbox plan to the driver; the manifest ends up with what was enforced.
    const job = JSON.parse(await readFile(path.join(outcome.jobDir, 'job.json'), 'utf8')) as Record<string, unknown>;
    const planned = job.sandbox as Record<string, unknown>;
    assert.equal(planned.timeoutMs, 4_000);
    assert.equal(planned.memoryBytes, caps.cgroups || caps.tools.prlimit ? 256 * 1024 * 1024 : null);
    assert.deepEqual(manifest.build.sandbox, outcome.sandbox);
    assert.equal(manifest.build.sandbox.network, caps.namespaces ? 'none' : 'host');

    const saw = (manifest as unknown as { fakeDriverSaw: { uid: number; env: string[]; sysPath0: string } })
      .fakeDriverSaw;
    if (caps.dropTo) assert.equal(saw.uid, caps.dropTo.uid);
    for (const key of ['TMPDIR', 'HOME', 'TORCHINDUCTOR_CACHE_DIR', 'PYTHONNOUSERSITE', 'PYTHONSAFEPATH']) {
      assert.ok(saw.env.includes(key), key);
    }
    assert.ok(!saw.env.includes('S3_SECRET_ACCESS_KEY'));
    // PYTHONSAFEPATH: the job folder (cwd) is not on sys.path, so it cannot shadow the driver.
    assert.notEqual(saw.sysPath0, outcome.jobDir);

    assert.match(outcome.log, /a stray line a library printed to stdout/);
    assert.match(outcome.log, /\[kiln\] the driver exited with code 0/);
    await outcome.cleanup();
    assert.equal(existsSync(outcome.jobDir), false);
    await outcome.cleanup(); // idempotent
  });

  it('maps exit 3 + error.json to a non-retryable error with the driver’s code and details', async () => {
    const { outcome } = await build('unsupported-op');
    const f = failure(outcome);
    assert.equal(f.code, ErrorCode.UNSUPPORTED_OP);
    assert.equal(f.retryable, false);
    assert.equal(f.message, 'inductor cannot lower aten.frobnicate');
    assert.deepEqual(f.details, { op: 'aten.frobnicate.default' });
    assert.match(f.log, /fake-driver: mode unsupported-op/);
    assert.match(f.log, /\[kiln\] UNSUPPORTED_OP: inductor cannot lower/);
    await f.cleanup();
  });

  it('maps another exit with error.json to that code, retryable (e.g. TOOLCHAIN_MISMATCH)', async () => {
    const f = failure((await build('toolchain-mismatch')).outcome);
    assert.equal(f.code, 'TOOLCHAIN_MISMATCH');
    assert.equal(f.retryable, true);
    await f.cleanup();
  });

  it('turns an unknown error code into DRIVER_CRASHED, keeping what the driver said', async () => {
    const f = failure((await build('unknown-code')).outcome);
    assert.equal(f.code, ErrorCode.DRIVER_CRASHED);
    assert.equal(f.details?.driverCode, 'SOMETHING_NEW');
    await f.cleanup();
  });

  it('maps a crash without error.json to DRIVER_CRASHED, retryable', async () => {
    const crash = failure((await build('crash')).outcome);
    assert.equal(crash.code, ErrorCode.DRIVER_CRASHED);
    assert.equal(crash.retryable, true);
    assert.match(crash.message, /exited with code 1: fake-driver: Traceback/);
    await crash.cleanup();

    const segv = failure((await build('segfault')).outcome);
    assert.equal(segv.code, ErrorCode.DRIVER_CRASHED);
    assert.match(segv.message, /killed by SIGSEGV/);
    await segv.cleanup();
  });

  it('maps a timeout to COMPILE_TIMEOUT (not retryable)', async () => {
    const started = Date.now();
    const f = failure((await build('sleep', { timeoutMs: 600 })).outcome);
    assert.equal(f.code, ErrorCode.COMPILE_TIMEOUT);
    assert.equal(f.retryable, false);
    assert.ok(Date.now() - started < 4_000);
    await f.cleanup();
  });

  it('maps the memory limit to COMPILE_OOM (not retryable)', async () => {
    const f = failure((await build('oom', { memoryBytes: 128 * 1024 * 1024 })).outcome);
    assert.equal(f.code, ErrorCode.COMPILE_OOM, f.log);
    assert.equal(f.retryable, false);
    assert.match(f.message, /memory limit of 128 MiB/);
    await f.cleanup();
  });

  it('maps an abort to CANCELLED', async () => {
    const controller = new AbortController();
    const pending = build('sleep', { signal: controller.signal });
    setTimeout(() => controller.abort(), 300);
    const f = failure((await pending).outcome);
    assert.equal(f.code, ErrorCode.CANCELLED);
    await f.cleanup();
  });

  it('rejects output it cannot trust: bad hashes, symlinks, another job’s manifest, no manifest', async () => {
    for (const [mode, why] of [
      ['bad-hash', /content hashes to/],
      ['symlink-part', /is a symlink/],
      ['wrong-key', /manifest cacheKey is "someone-elses-key"/],
      ['no-manifest', /no out\/manifest.json/],
      ['wrong-precision', /manifest precision is "bf16", the recipe says fp32/],
      ['lower-level', /manifest requires x86-64-v2, below the target's v3/],
    ] as const) {
      const f = failure((await build(mode)).outcome);
      assert.equal(f.code, ErrorCode.DRIVER_CRASHED, mode);
      assert.match(f.message, why, mode);
      await f.cleanup();
    }
  });

  it('never reads error.json through a symlink (it could point at any file the worker can read)', async () => {
    const f = failure((await build('symlink-error')).outcome);
    assert.equal(f.code, ErrorCode.DRIVER_CRASHED);
    assert.equal(f.details?.errorJson, 'error.json is a symlink');
    assert.doesNotMatch(JSON.stringify(f), /root:x:0:0/);
    await f.cleanup();
  });

  it('returns a retryable failure, not an exception, when the job cannot be prepared', async () => {
    const f = failure((await build('success', { modelPath: path.join(scratch, 'missing.pt2') })).outcome);
    assert.equal(f.code, ErrorCode.DRIVER_CRASHED);
    assert.equal(f.retryable, true);
    assert.match(f.message, /could not prepare the build/);
    await f.cleanup();
  });

  it('leaves no job folders behind once cleaned up', async () => {
    assert.deepEqual(await readdir(workRoot), []);
  });
});

describe('parseProgress', () => {
  it('accepts phase events and ignores everything else', () => {
    assert.deepEqual(parseProgress('{"event":"phase","phase":"compiling","message":"m","elapsedS":1.5}'), {
      phase: 'compiling',
      message: 'm',
      elapsedS: 1.5,
    });
    assert.equal(parseProgress('{"event":"other"}'), null);
    assert.equal(parseProgress('{not json'), null);
    assert.equal(parseProgress('plain text'), null);
  });
});
